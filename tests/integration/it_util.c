/* Helpers shared by the integration tests. */
#include "it_util.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

const char *it_bootstrap(void) {
        const char *b = getenv("KPAY_TEST_BOOTSTRAP");
        if (!b || !*b)
                fail_msg(
                    "KPAY_TEST_BOOTSTRAP is not set: run this test "
                    "through ctest (./kpay test)");
        return b;
}

int64_t it_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_unique_prefix(char *buf, size_t size, const char *test) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(buf, size, "it-%s-%ld-%ld.", test, (long)getpid(),
                 (long)(ts.tv_nsec ^ ts.tv_sec) & 0xffffff);
}

int it_run(char *const argv[], int timeout_ms, char **outp) {
        char path[] = "/tmp/kpay-it-out-XXXXXX";
        int fd      = mkstemp(path);
        if (fd < 0)
                fail_msg("mkstemp: %s", strerror(errno));
        unlink(path);
        pid_t pid = fork();
        if (pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (pid == 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                execv(argv[0], argv);
                fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        int status = 0, rc = -1;
        int64_t deadline = it_now_ms() + timeout_ms;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid) {
                        rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                        break;
                }
                if (it_now_ms() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        break;
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        if (outp) {
                off_t len = lseek(fd, 0, SEEK_END);
                char *buf = calloc(1, (size_t)len + 1);
                if (!buf || pread(fd, buf, (size_t)len, 0) != len)
                        fail_msg("reading the output of %s", argv[0]);
                *outp = buf;
        }
        close(fd);
        return rc;
}

rd_kafka_t *it_client(rd_kafka_type_t type, const char *const *props) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", it_bootstrap(), errstr,
                              sizeof(errstr)))
                fail_msg("%s", errstr);
        for (; props && props[0]; props += 2)
                if (rd_kafka_conf_set(conf, props[0], props[1], errstr,
                                      sizeof(errstr)))
                        fail_msg("%s=%s: %s", props[0], props[1], errstr);
        rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (!rk)
                fail_msg("rd_kafka_new: %s", errstr);
        return rk;
}
