#!/usr/bin/env node
// Offline checks of the deployment files (docs/deploy.md, "What the tests
// check"), run by ctest (label deploy) through check-compose.sh and
// check-k8s.sh:
//
//   node check.js compose RENDERED.yml BINDIR
//       RENDERED.yml is `docker-compose config` of docker/docker-compose.yml;
//       docker/Dockerfile is checked too (what can be without building it).
//   node check.js k8s RENDERED.yml BINDIR base|dev
//       RENDERED.yml is `kubectl kustomize` of k8s/ or k8s/overlays/dev.
//
// Both check that every option a kpay container is given (a --flag in its
// command or args, a KPAY_* variable in its environment, from a ConfigMap
// too) is one that binary's --help lists, except the ones that
// pending-flags.txt names (options other engineers add this round). The k8s
// check also validates every rendered object against the Kubernetes schemas
// (npm kubernetes-models) and tests the invariants of docs/deploy.md.
// The npm packages come from the build directory (NODE_PATH, ./kpay deps).
"use strict";

const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

let YAML;
try {
  YAML = require("yaml");
} catch (e) {
  console.error(
    "check.js: the npm package 'yaml' is missing: run ./kpay deps (npm ci of " +
      "tests/deploy into <build>/deploy-npm; NODE_PATH points there)",
  );
  process.exit(2);
}

const PROCESSORS = ["kpay-inflight", "kpay-account", "kpay-confirmed", "kpay-metrics"];
const SERVICES = ["kpay-control", "kpay-web"];
const TOOLS = ["kpay-admin", "kpay-gen"];
const BINARIES = [...PROCESSORS, ...SERVICES, ...TOOLS];

let failures = 0;
let checks = 0;
function fail(msg) {
  failures++;
  checks++;
  console.log(`FAIL ${msg}`);
}
function pass(msg) {
  checks++;
  if (process.env.KPAY_DEPLOY_VERBOSE) console.log(`ok   ${msg}`);
}
function check(cond, msg) {
  (cond ? pass : fail)(msg);
  return cond;
}

// ---------------------------------------------------------------------------
// What each binary accepts, from its own --help.

const helpCache = new Map();
function help(bindir, bin) {
  if (helpCache.has(bin)) return helpCache.get(bin);
  const exe = path.join(bindir, bin);
  let text;
  try {
    text = execFileSync(exe, ["--help"], { encoding: "utf8" });
  } catch (e) {
    console.error(`check.js: ${exe} --help failed: ${e.message}`);
    process.exit(2);
  }
  const options = new Map(); // name -> {env, def}
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s+(?:-\S, )?--([a-z0-9][a-z0-9-]*)/.exec(lines[i]);
    if (!m) continue;
    const o = { env: null, def: null };
    const d = /default: (.*?); env (KPAY_[A-Z0-9_]+)/.exec(lines[i + 1] || "");
    if (d) {
      o.def = d[1] === "none" ? null : d[1];
      o.env = d[2];
    }
    options.set(m[1], o);
  }
  const envs = new Set(text.match(/KPAY_[A-Z0-9_]+/g) || []);
  const h = { text, options, envs };
  helpCache.set(bin, h);
  return h;
}

// The option an environment variable sets (KPAY_STATE_DIR -> state-dir).
function envOption(env) {
  return env.replace(/^KPAY_/, "").toLowerCase().replace(/_/g, "-");
}

// pending-flags.txt: "BINARY OPTION OWNER" lines; BINARY may be '*'.
function loadPending() {
  const file = path.join(__dirname, "pending-flags.txt");
  const pending = [];
  for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [bin, option, owner] = line.split(/\s+/);
    pending.push({ bin, option, owner, used: [], missing: [] });
  }
  return pending;
}

// Checks one container's settings against its binary's --help.
// settings: [{kind: 'flag'|'env', name, where}]
function checkSettings(bindir, bin, settings, pending, where) {
  const h = help(bindir, bin);
  for (const s of settings) {
    let option;
    let known;
    if (s.kind === "flag") {
      option = s.name;
      known = h.options.has(option);
    } else {
      option = envOption(s.name);
      // An option's variable, or one the help names (KPAY_CONTROL_TOKEN).
      known = h.envs.has(s.name);
    }
    const label = `${where}: ${bin} ${s.kind === "flag" ? "--" + s.name : s.name}`;
    const p = pending.find((e) => e.option === option && (e.bin === "*" || e.bin === bin));
    if (p) {
      p.used.push(label);
      if (!known) {
        p.missing.push(label);
        pass(`${label} (pending: ${p.owner} adds --${option})`);
        continue;
      }
    }
    check(known, `${label} is not in \`${bin} --help\``);
  }
}

function reportPending(pending) {
  for (const p of pending) {
    if (p.used.length === 0) continue;
    if (p.missing.length === 0) {
      fail(
        `pending-flags.txt: ${p.bin} --${p.option} (${p.owner}) is in --help now ` +
          `wherever it is used: remove the line`,
      );
    } else {
      console.log(
        `note --${p.option} (${p.owner}, pending) used but not yet in --help: ` +
          p.missing.join("; "),
      );
    }
  }
}

// A container's binary and its --flags, from command + args.
function commandOf(argv) {
  const bin = argv.length ? path.basename(String(argv[0])) : null;
  const flags = [];
  for (const a of argv.slice(1)) {
    const m = /^--([a-z0-9][a-z0-9-]*)/.exec(String(a));
    if (m) flags.push(m[1]);
  }
  return { bin, flags };
}

// ---------------------------------------------------------------------------
// docker-compose.yml (as `docker-compose config` renders it).

function checkCompose(file, bindir) {
  const doc = YAML.parse(fs.readFileSync(file, "utf8"));
  const pending = loadPending();
  const services = doc.services || {};
  const seen = new Set();
  let accounts = 0;
  for (const [name, svc] of Object.entries(services)) {
    const argv = [...[].concat(svc.entrypoint || []), ...[].concat(svc.command || [])];
    const { bin, flags } = commandOf(argv);
    if (!bin || !BINARIES.includes(bin)) {
      check(name === "kafka", `compose: service ${name} runs no kpay binary (${argv.join(" ")})`);
      continue;
    }
    seen.add(bin);
    if (bin === "kpay-account") accounts++;
    const env = svc.environment || {};
    const settings = [
      ...flags.map((f) => ({ kind: "flag", name: f })),
      ...Object.keys(env)
        .filter((k) => k.startsWith("KPAY_"))
        .map((k) => ({ kind: "env", name: k })),
    ];
    checkSettings(bindir, bin, settings, pending, `compose ${name}`);
    if (PROCESSORS.includes(bin) || SERVICES.includes(bin)) {
      const test = [].concat((svc.healthcheck || {}).test || []).join(" ");
      check(/\/readyz/.test(test), `compose ${name}: the health check asks /readyz`);
      check(
        env.KPAY_ADVERTISE === `${svc.hostname || name}:8080` && env.KPAY_LISTEN === "0.0.0.0:8080",
        `compose ${name}: listens on 0.0.0.0:8080 and advertises its own name`,
      );
      check(!!env.KPAY_INSTANCE_ID, `compose ${name}: has an instance id`);
      check(env.KPAY_OPS_LOG === "true", `compose ${name}: the ops log is on`);
      const grace = parseDuration(svc.stop_grace_period || "10s");
      const shutdown = Number(env.KPAY_SHUTDOWN_TIMEOUT_MS || defaultOf(bindir, bin, "shutdown-timeout-ms"));
      check(grace * 1000 > shutdown, `compose ${name}: stop_grace_period ${grace}s > shutdown timeout ${shutdown} ms`);
    }
    if (PROCESSORS.includes(bin)) {
      const vols = [].concat(svc.volumes || []).map((v) => (typeof v === "string" ? v : `${v.source}:${v.target}`));
      const state = env.KPAY_STATE_DIR;
      const vol = vols.find((v) => v.split(":")[1] === state);
      check(!!state && !!vol, `compose ${name}: its state directory ${state} is a volume`);
      if (vol) check(Object.keys(doc.volumes || {}).includes(vol.split(":")[0]), `compose ${name}: ${vol} is a named volume`);
      check(env.KPAY_STATIC_MEMBERSHIP === "true", `compose ${name}: static membership`);
    }
  }
  for (const b of [...PROCESSORS, ...SERVICES, "kpay-admin"]) check(seen.has(b), `compose: runs ${b}`);
  check(accounts === 2, `compose: two kpay-account instances (${accounts})`);
  const ids = Object.values(services)
    .map((s) => (s.environment || {}).KPAY_INSTANCE_ID)
    .filter(Boolean);
  check(new Set(ids).size === ids.length, `compose: instance ids are unique`);
  const web = services.web || {};
  check(
    [].concat(web.ports || []).some((p) => (typeof p === "string" ? /(^|:)8080:8080(\/tcp)?$/.test(p) : p.published == 8080 && p.target == 8080)),
    `compose: kpay-web is published on 8080`,
  );
  const kafka = services.kafka || {};
  check(/^apache\/kafka:3\.9\./.test(kafka.image || ""), `compose: Kafka is apache/kafka 3.9.x (${kafka.image})`);
  const kenv = kafka.environment || {};
  for (const k of [
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    "KAFKA_DEFAULT_REPLICATION_FACTOR",
    "KAFKA_MIN_INSYNC_REPLICAS",
  ])
    check(String(kenv[k]) === "1", `compose: single node: ${k}=1 (${kenv[k]})`);
  check(clusterIdOk(kenv.CLUSTER_ID), `compose: Kafka's CLUSTER_ID is a base64url UUID (${kenv.CLUSTER_ID})`);
  check(/broker/.test(kenv.KAFKA_PROCESS_ROLES) && /controller/.test(kenv.KAFKA_PROCESS_ROLES), `compose: Kafka is a combined KRaft node`);
  for (const [name, svc] of Object.entries(services)) {
    if (!svc.build) continue;
    const df = path.join(svc.build.context, svc.build.dockerfile || "Dockerfile");
    check(fs.existsSync(df) && fs.existsSync(path.join(svc.build.context, ".dockerignore")), `compose ${name}: builds ${df} from the repository`);
  }
  checkDockerfile(path.join(__dirname, "..", "..", "docker", "Dockerfile"), bindir);
  reportPending(pending);
}

// ---------------------------------------------------------------------------
// docker/Dockerfile: what can be checked without building it.

function checkDockerfile(file, bindir) {
  const text = fs.readFileSync(file, "utf8").replace(/\\\n/g, " ");
  const lines = text.split("\n").filter((l) => l.trim() && !/^\s*#/.test(l));
  const froms = lines.filter((l) => /^FROM\s/i.test(l)).map((l) => l.split(/\s+/)[1]);
  check(froms.length === 2 && froms[0] === "debian:12" && froms[1] === "debian:12-slim", `Dockerfile: a Debian 12 build stage and a debian:12-slim runtime stage (${froms})`);
  const runs = lines.filter((l) => /^RUN\s/.test(l)).join("\n");
  check(/\.\/kpay deps/.test(runs) && /\.\/kpay build/.test(runs), `Dockerfile: the build stage runs ./kpay deps and ./kpay build`);
  check(/KPAY_SCOPE=daemons/.test(text), `Dockerfile: KPAY_SCOPE=daemons`);
  const users = lines.filter((l) => /^USER\s/.test(l)).map((l) => l.split(/\s+/)[1]);
  check(users.length === 1 && !/^(0|root)(:|$)/.test(users[0]), `Dockerfile: the runtime stage runs as a non-root user (${users})`);
  // The binaries the image installs are the ones the build makes.
  const m = /for d in ([a-z ]+); do/.exec(text);
  const bins = m ? m[1].trim().split(/\s+/).map((d) => `kpay-${d}`) : [];
  check(bins.sort().join() === [...BINARIES].sort().join(), `Dockerfile: installs every kpay binary (${bins})`);
  for (const b of bins) check(fs.existsSync(path.join(bindir, b)), `Dockerfile: ${b} is built`);
  // COPY sources exist in the context and .dockerignore keeps them.
  const root = path.resolve(path.dirname(file), "..");
  const ignore = fs
    .readFileSync(path.join(root, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  for (const l of lines.filter((x) => /^COPY\s/.test(x) && !/--from=/.test(x))) {
    const src = l.split(/\s+/)[1];
    check(fs.existsSync(path.join(root, src)), `Dockerfile: COPY ${src} exists`);
    check(!ignore.includes(src), `Dockerfile: COPY ${src} is not in .dockerignore`);
  }
  for (const need of ["kpay", "CMakeLists.txt", "common", "cmake", "web-tier", "deps"])
    check(!ignore.includes(need), `.dockerignore keeps ${need}`);
  // ENV KPAY_* of the runtime stage: options of the daemons.
  const runtime = text.slice(text.lastIndexOf("\nFROM "));
  for (const env of new Set(runtime.match(/\bKPAY_[A-Z0-9_]+(?==)/g) || []))
    check(
      [...PROCESSORS, ...SERVICES].some((b) => help(bindir, b).envs.has(env)),
      `Dockerfile: ENV ${env} is an option of a daemon`,
    );
}

// A KRaft cluster id: a base64url-encoded 16-byte UUID (kafka-storage
// random-uuid), not starting with '-' (it would read as an option).
function clusterIdOk(id) {
  return /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(String(id)) && Buffer.from(String(id), "base64url").length === 16;
}

function parseDuration(s) {
  const m = /^(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(String(s));
  if (!m) return NaN;
  return Number(m[1] || 0) * 60 + Number(m[2] || 0);
}

function defaultOf(bindir, bin, option) {
  const o = help(bindir, bin).options.get(option);
  return o ? o.def : null;
}

// ---------------------------------------------------------------------------
// Kubernetes (as `kubectl kustomize` renders k8s/ or an overlay).

function loadModels() {
  try {
    require.resolve("kubernetes-models/v1");
  } catch (e) {
    console.error("check.js: the npm package 'kubernetes-models' is missing: run ./kpay deps");
    process.exit(2);
  }
}

function schemaValidate(obj) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : [null, obj.apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  let Cls;
  try {
    Cls = require(mod)[obj.kind];
  } catch (e) {
    Cls = undefined;
  }
  const name = `${obj.kind} ${obj.metadata && obj.metadata.name}`;
  if (!check(typeof Cls === "function", `k8s ${name}: ${obj.apiVersion} ${obj.kind} is a Kubernetes kind`)) return;
  try {
    new Cls(obj).validate();
    pass(`k8s ${name}: valid`);
  } catch (e) {
    fail(`k8s ${name}: schema: ${String(e.message).split("\n").slice(0, 5).join("; ")}`);
  }
}

function labelsMatch(selector, labels) {
  if (!selector) return false;
  const ml = selector.matchLabels || selector;
  return Object.entries(ml).every(([k, v]) => labels && labels[k] === v);
}

// The environment a container sees: name -> {value} | {fieldRef} | ..., with
// envFrom ConfigMaps first (env wins).
function containerEnv(c, objs) {
  const env = new Map();
  for (const ef of c.envFrom || []) {
    if (ef.configMapRef) {
      const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === ef.configMapRef.name);
      check(!!cm, `k8s envFrom ${ef.configMapRef.name}: the ConfigMap exists`);
      for (const [k, v] of Object.entries((cm && cm.data) || {})) env.set(k, { value: v, from: cm.metadata.name });
    }
    if (ef.secretRef) {
      const s = objs.find((o) => o.kind === "Secret" && o.metadata.name === ef.secretRef.name);
      check(!!s, `k8s envFrom ${ef.secretRef.name}: the Secret exists`);
      for (const k of Object.keys({ ...((s && s.data) || {}), ...((s && s.stringData) || {}) }))
        env.set(k, { secret: s.metadata.name });
    }
  }
  for (const e of c.env || []) {
    const ref = e.valueFrom && e.valueFrom.configMapKeyRef;
    if (ref) {
      const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === ref.name);
      const ok = check(!!cm && cm.data && ref.key in cm.data, `k8s env ${e.name}: ConfigMap ${ref.name} has ${ref.key}`);
      env.set(e.name, ok ? { value: cm.data[ref.key], from: ref.name } : e);
    } else env.set(e.name, e);
  }
  return env;
}

// A setting's value: from env, else the flag in command/args, else the
// binary's default.
function settingOf(bindir, bin, argv, env, option) {
  const envName = "KPAY_" + option.toUpperCase().replace(/-/g, "_");
  for (const a of argv) {
    const m = new RegExp(`^--${option}=(.*)$`).exec(String(a));
    if (m) return m[1];
  }
  if (env.has(envName) && env.get(envName).value !== undefined) return env.get(envName).value;
  return defaultOf(bindir, bin, option);
}

function isKpayImage(image) {
  return /(^|\/)kpay(:|@|$)/.test(image || "");
}

function checkK8s(file, bindir, variant) {
  loadModels();
  const objs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
    .map((d) => d.toJSON())
    .filter(Boolean);
  check(objs.length > 0, `k8s: rendered objects (${objs.length})`);
  const pending = loadPending();
  for (const o of objs) schemaValidate(o);

  const ns = objs.filter((o) => o.kind === "Namespace");
  check(ns.length === 1, `k8s: one Namespace (${ns.map((n) => n.metadata.name)})`);
  const nsName = ns.length ? ns[0].metadata.name : null;
  for (const o of objs)
    if (o.kind !== "Namespace") check(o.metadata.namespace === nsName, `k8s ${o.kind} ${o.metadata.name}: in namespace ${nsName}`);

  const byKind = (k) => objs.filter((o) => o.kind === k);
  const workloads = objs.filter((o) => ["StatefulSet", "Deployment", "Job"].includes(o.kind));
  const seen = new Map();
  let topicPartitions = null;
  let topicRf = null;
  const procPartitions = [];

  // Kafka: its StatefulSet, replicas and the replication settings.
  const kafka = byKind("StatefulSet").find((s) => /(^|\/)apache\/kafka:/.test(s.spec.template.spec.containers[0].image));
  let kafkaNodes = 0;
  if (check(!!kafka, `k8s: a Kafka StatefulSet (apache/kafka)`)) {
    kafkaNodes = kafka.spec.replicas;
    const want = variant === "dev" ? { nodes: 1, rf: "1", isr: "1" } : { nodes: 3, rf: "3", isr: "2" };
    check(kafkaNodes === want.nodes, `k8s kafka: ${want.nodes} node(s) (${kafkaNodes})`);
    const c = kafka.spec.template.spec.containers[0];
    const env = containerEnv(c, objs);
    const val = (k) => env.has(k) && String(env.get(k).value);
    check(/^apache\/kafka:3\.9\./.test(c.image), `k8s kafka: apache/kafka 3.9.x (${c.image})`);
    check(val("KAFKA_DEFAULT_REPLICATION_FACTOR") === want.rf, `k8s kafka: default.replication.factor ${want.rf}`);
    check(val("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") === want.rf, `k8s kafka: offsets.topic.replication.factor ${want.rf}`);
    check(val("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR") === want.rf, `k8s kafka: transaction.state.log.replication.factor ${want.rf}`);
    check(val("KAFKA_MIN_INSYNC_REPLICAS") === want.isr, `k8s kafka: min.insync.replicas ${want.isr}`);
    check(val("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR") === want.isr, `k8s kafka: transaction.state.log.min.isr ${want.isr}`);
    check(clusterIdOk(val("CLUSTER_ID")), `k8s kafka: CLUSTER_ID is a base64url UUID (${val("CLUSTER_ID")})`);
    const voters = String(val("KAFKA_CONTROLLER_QUORUM_VOTERS") || "").split(",").filter(Boolean);
    check(voters.length === kafkaNodes, `k8s kafka: ${kafkaNodes} controller quorum voter(s) (${voters.length})`);
    voters.forEach((v, i) =>
      check(
        new RegExp(`^${i}@${kafka.metadata.name}-${i}\\.${kafka.spec.serviceName}\\.`).test(v),
        `k8s kafka: voter ${i} is pod ${kafka.metadata.name}-${i} (${v})`,
      ),
    );
    // OrderedReady would wait for kafka-0 to be ready, which needs a quorum.
    check(kafkaNodes === 1 || kafka.spec.podManagementPolicy === "Parallel", `k8s kafka: its nodes start in parallel (a quorum needs them all)`);
    checkHeadless(objs, kafka);
    check((kafka.spec.volumeClaimTemplates || []).length > 0, `k8s kafka: a persistent volume per node`);
    checkPdb(objs, kafka);
  }

  for (const w of workloads) {
    const pod = w.spec.template.spec;
    for (const c of [...(pod.initContainers || []), ...pod.containers]) {
      if (!isKpayImage(c.image)) continue;
      const argv = [...(c.command || []), ...(c.args || [])];
      const { bin, flags } = commandOf(argv);
      const where = `k8s ${w.kind} ${w.metadata.name}`;
      if (!check(BINARIES.includes(bin), `${where}: runs a kpay binary (${argv.join(" ")})`)) continue;
      seen.set(bin, w);
      const env = containerEnv(c, objs);
      const settings = [
        ...flags.map((f) => ({ kind: "flag", name: f })),
        ...[...env.keys()].filter((k) => k.startsWith("KPAY_")).map((k) => ({ kind: "env", name: k })),
      ];
      checkSettings(bindir, bin, settings, pending, where);
      check(!!(c.resources && c.resources.requests && c.resources.limits), `${where}: resource requests and limits`);
      const setting = (o) => settingOf(bindir, bin, argv, env, o);
      const kc = setting("kafka-config");
      if (kc) check(secretFile(objs, pod, c, kc), `${where}: the Kafka credentials are a file from a Secret (${kc})`);
      if (bin === "kpay-admin") {
        topicPartitions = Number(setting("partitions"));
        topicRf = Number(setting("replication-factor"));
      }
      if (!PROCESSORS.includes(bin) && !SERVICES.includes(bin)) continue;

      // Every daemon: readiness on /readyz on the port it listens on.
      const listen = String(setting("listen") || "");
      const port = Number(listen.split(":").pop());
      const cport = (p) => {
        if (typeof p === "number") return p;
        const cp = (c.ports || []).find((x) => x.name === p);
        return cp ? cp.containerPort : NaN;
      };
      const rp = c.readinessProbe && c.readinessProbe.httpGet;
      check(!!rp && rp.path === "/readyz" && cport(rp.port) === port, `${where}: readiness is GET /readyz on its port ${port}`);
      check(/^0\.0\.0\.0:|^:/.test(listen), `${where}: listens on every interface (${listen})`);
      const lp = c.livenessProbe && c.livenessProbe.httpGet;
      check(!!lp && lp.path === "/healthz", `${where}: liveness is GET /healthz`);
      const grace = pod.terminationGracePeriodSeconds === undefined ? 30 : pod.terminationGracePeriodSeconds;
      const shutdown = Number(setting("shutdown-timeout-ms"));
      check(grace * 1000 >= shutdown + 5000, `${where}: terminationGracePeriodSeconds ${grace}s >= shutdown timeout ${shutdown} ms + 5 s`);
      const podName = env.get("POD_NAME");
      check(
        !!podName && podName.valueFrom && podName.valueFrom.fieldRef && podName.valueFrom.fieldRef.fieldPath === "metadata.name",
        `${where}: POD_NAME from the downward API`,
      );
      check(setting("instance-id") === "$(POD_NAME)", `${where}: --instance-id is the pod name`);
      check(!!(pod.securityContext && pod.securityContext.runAsNonRoot), `${where}: runs as non-root`);

      if (SERVICES.includes(bin)) {
        check(w.kind === "Deployment", `${where}: ${bin} is a Deployment`);
        const svc = byKind("Service").find((s) => labelsMatch(s.spec.selector, w.spec.template.metadata.labels));
        check(!!svc && svc.spec.clusterIP !== "None", `${where}: behind a Service`);
        checkPdb(objs, w);
        if (bin === "kpay-control") {
          const tf = setting("token-file");
          check(!!tf && secretFile(objs, pod, c, tf), `${where}: the control token is a file from a Secret (${tf})`);
        }
        continue;
      }

      // Processors: a StatefulSet with state, stable names, static membership.
      if (!check(w.kind === "StatefulSet", `${where}: ${bin} is a StatefulSet`)) continue;
      const replicas = w.spec.replicas === undefined ? 1 : w.spec.replicas;
      const partitions = Number(setting("partitions"));
      procPartitions.push(partitions);
      check(partitions >= replicas, `${where}: partitions ${partitions} >= replicas ${replicas}`);
      if (bin === "kpay-account") check(replicas === 4, `${where}: kpay-account has 4 replicas (${replicas})`);
      const svc = checkHeadless(objs, w);
      const podNs = env.get("POD_NAMESPACE");
      check(
        !!podNs && podNs.valueFrom && podNs.valueFrom.fieldRef && podNs.valueFrom.fieldRef.fieldPath === "metadata.namespace",
        `${where}: POD_NAMESPACE from the downward API`,
      );
      const adv = setting("advertise");
      check(
        adv === `$(POD_NAME).${w.spec.serviceName}.$(POD_NAMESPACE).svc:${port}`,
        `${where}: advertises the pod's DNS name $(POD_NAME).${w.spec.serviceName}.$(POD_NAMESPACE).svc:${port} (${adv})`,
      );
      if (svc) check((svc.spec.ports || []).some((p) => p.port === port), `${where}: the headless Service has port ${port}`);
      check(setting("static-membership") === "true", `${where}: static membership`);
      const stateDir = setting("state-dir");
      const mount = (c.volumeMounts || []).find((m) => m.mountPath === stateDir);
      check(
        !!mount && (w.spec.volumeClaimTemplates || []).some((t) => t.metadata.name === mount.name),
        `${where}: the state directory ${stateDir} is a persistent volume claim`,
      );
      const sp = c.startupProbe && c.startupProbe.httpGet;
      check(
        !!sp && sp.path === "/readyz" && (c.startupProbe.failureThreshold || 3) * (c.startupProbe.periodSeconds || 10) >= 1800,
        `${where}: a startup probe on /readyz that allows >= 30 min of restore`,
      );
      checkPdb(objs, w);
    }
  }
  for (const b of [...PROCESSORS, ...SERVICES, "kpay-admin"]) check(seen.has(b), `k8s: runs ${b}`);
  const job = seen.get("kpay-admin");
  check(!!job && job.kind === "Job", `k8s: the topic setup is a Job`);
  check(procPartitions.every((p) => p === topicPartitions), `k8s: the processors expect the topics' ${topicPartitions} partitions (${procPartitions})`);
  check(topicRf >= 1 && topicRf <= kafkaNodes, `k8s: topic replication factor ${topicRf} <= ${kafkaNodes} Kafka node(s)`);
  check(topicRf === (variant === "dev" ? 1 : 3), `k8s: topic replication factor ${topicRf} for ${variant}`);
  reportPending(pending);
}

// The headless Service that names a StatefulSet's pods.
function checkHeadless(objs, sts) {
  const svc = objs.find((o) => o.kind === "Service" && o.metadata.name === sts.spec.serviceName);
  const where = `k8s StatefulSet ${sts.metadata.name}`;
  if (!check(!!svc, `${where}: its serviceName ${sts.spec.serviceName} is a Service`)) return null;
  check(svc.spec.clusterIP === "None", `${where}: Service ${svc.metadata.name} is headless`);
  check(svc.spec.publishNotReadyAddresses === true, `${where}: Service ${svc.metadata.name} publishes pods that are not ready (restoring)`);
  check(labelsMatch(svc.spec.selector, sts.spec.template.metadata.labels), `${where}: Service ${svc.metadata.name} selects its pods`);
  check(labelsMatch(sts.spec.selector, sts.spec.template.metadata.labels), `${where}: its selector matches its pods`);
  return svc;
}

function checkPdb(objs, w) {
  const pdb = objs.find(
    (o) => o.kind === "PodDisruptionBudget" && labelsMatch(o.spec.selector, w.spec.template.metadata.labels),
  );
  check(!!pdb, `k8s ${w.kind} ${w.metadata.name}: a PodDisruptionBudget`);
}

// True when FILE is inside a volume mounted from a Secret that exists.
function secretFile(objs, pod, c, file) {
  const m = (c.volumeMounts || []).find((vm) => String(file).startsWith(vm.mountPath.replace(/\/?$/, "/")));
  if (!m) return false;
  const v = (pod.volumes || []).find((x) => x.name === m.name);
  if (!v) return false;
  const names = [];
  if (v.secret) names.push(v.secret.secretName);
  if (v.projected) for (const s of v.projected.sources || []) if (s.secret) names.push(s.secret.name);
  return names.length > 0 && names.every((n) => objs.some((o) => o.kind === "Secret" && o.metadata.name === n));
}

// ---------------------------------------------------------------------------

function main() {
  const [mode, file, bindir, variant] = process.argv.slice(2);
  if (mode === "compose" && file && bindir) checkCompose(file, bindir);
  else if (mode === "k8s" && file && bindir && (variant === "base" || variant === "dev")) checkK8s(file, bindir, variant);
  else {
    console.error("usage: check.js compose RENDERED.yml BINDIR | k8s RENDERED.yml BINDIR base|dev");
    process.exit(2);
  }
  console.log(`${checks - failures} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

main();
