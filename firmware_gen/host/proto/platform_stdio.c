#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "aed_platform.h"

static uint8_t aed_in[4096];
static ssize_t aed_in_len, aed_in_pos;

void aed_platform_init(void) {}

int aed_uart_getc(void)
{
    if (aed_in_pos == aed_in_len) {
        do {
            aed_in_len = read(0, aed_in, sizeof aed_in);
        } while (aed_in_len < 0 && errno == EINTR);
        if (aed_in_len <= 0) {
            return -1; /* end of input (or the pty's other side went away) */
        }
        aed_in_pos = 0;
    }
    return aed_in[aed_in_pos++];
}

void aed_uart_write(const uint8_t *data, size_t n)
{
    while (n > 0) {
        const ssize_t w = write(1, data, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            exit(3);
        }
        data += w;
        n -= (size_t)w;
    }
}

uint32_t aed_cycles(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}
