/* Reference firmware: bring up the platform, run the self-test on the golden vectors, print one
 * line on the UART, then serve the host over the serial protocol (aed_proto_run, never returns).
 * Built with -DAED_NO_PROTO it is a self-test-only image: main returns 0 on PASS, 1 on FAIL
 * (the Cortex-M4 startup then halts). */
#include <stddef.h>
#include <stdint.h>

#include "aed_config.h"
#include "aed_frontend.h"
#include "aed_platform.h"
#include "aed_selftest.h"
#ifndef AED_NO_PROTO
#include "aed_proto.h"
#endif

static void put_str(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    aed_uart_write((const uint8_t *)s, n);
}

static void put_u32(const char *name, uint32_t v)
{
    char buf[12];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    put_str(name);
    aed_uart_write((const uint8_t *)&buf[i], sizeof buf - i);
}

/* First 12 hex digits of a hash: enough to tell builds apart on one line. */
static void put_hash(const char *name, const char *hash)
{
    put_str(name);
    aed_uart_write((const uint8_t *)hash, 12);
}

int main(void)
{
    aed_selftest_stats_t stats;
    int failures;
    uint32_t i;
    aed_platform_init();
    failures = aed_selftest();
    aed_selftest_stats(&stats);
    put_str(failures == 0 ? "aedfw selftest PASS" : "aedfw selftest FAIL");
    put_u32(" ", stats.passed);
    put_u32("/", stats.clips);
    put_hash(" model=", AED_MODEL_HASH);
    put_hash(" fe=", AED_FRONTEND_HASH);
    put_u32(" frames=", stats.frames);
    put_u32(" fe_cycles=", stats.frontend_cycles);
    put_u32(" windows=", stats.windows);
    put_u32(" model_cycles=", stats.model_cycles);
    put_u32(" stack=", (uint32_t)aed_stack_high_water());
    for (i = 0; i < stats.clips; i++) {
        if (stats.failed[i] != 0) {
            put_str(" bad=");
            put_str(aed_golden_clips[i].name);
            put_u32(":", stats.failed[i]);
        }
    }
    put_str("\r\n");
#ifdef AED_NO_PROTO
    return failures == 0 ? 0 : 1;
#else
    aed_proto_run();
    return 0;
#endif
}
