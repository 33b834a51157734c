/* Host platform: the serial link is stdin/stdout (writes unbuffered), so the native build runs
 * as a software device on a pseudo-terminal or a pipe; the protocol tests and fuzzers build it. aed_cycles() is CLOCK_MONOTONIC in
 * nanoseconds (wraps every 4.3 s), a wall-clock stand-in for the cycle counter. */
#define _POSIX_C_SOURCE 199309L
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "aed_platform.h"

void aed_platform_init(void) {}

/* Reads what the link has (up to a block) and hands it out byte by byte: one read() per burst,
 * not per byte. */
static uint8_t aed_rx_block[4096];
static ssize_t aed_rx_len, aed_rx_pos;

int aed_uart_getc(void)
{
    while (aed_rx_pos == aed_rx_len) {
        aed_rx_len = read(STDIN_FILENO, aed_rx_block, sizeof aed_rx_block);
        aed_rx_pos = 0;
        if (aed_rx_len == 0 || (aed_rx_len < 0 && errno != EINTR)) {
            aed_rx_len = 0;
            return -1; /* end of input or error: the link is closed */
        }
        if (aed_rx_len < 0) {
            aed_rx_len = 0; /* interrupted: read again */
        }
    }
    return aed_rx_block[aed_rx_pos++];
}

void aed_uart_write(const uint8_t *data, size_t n)
{
    while (n > 0) {
        const ssize_t put = write(STDOUT_FILENO, data, n);
        if (put < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; /* the reader went away; nothing sensible left to do */
        }
        data += put;
        n -= (size_t)put;
    }
}

uint32_t aed_cycles(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

size_t aed_stack_high_water(void)
{
    return 0;
}
