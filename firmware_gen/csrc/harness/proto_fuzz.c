/* libFuzzer target for the device side of the protocol (built by benchmarks/fuzz_protocol.py
 * with clang -fsanitize=fuzzer,address,undefined).
 *
 * Input byte 0 picks the mode:
 *  even: raw wire bytes into aed_proto_feed, and into a second decoder whose every valid frame
 *        must re-encode and decode to itself;
 *  odd:  records [code][seq][len lo][len hi][payload], each sent as a valid frame (right CRC), so
 *        the handlers see arbitrary requests.
 * Every byte the device sends must decode as valid frames with payloads <= the maximum.
 * It is the platform here (aed_platform.h): the UART output is checked instead of sent. */
#include <stdlib.h>
#include <string.h>

#include "aed_platform.h"
#include "aed_proto.h"

static aed_frame_decoder_t aed_fz_out; /* checks what the device sends */
static uint32_t aed_fz_clock;

void aed_platform_init(void) {}

int aed_uart_getc(void)
{
    return -1;
}

uint32_t aed_cycles(void)
{
    return aed_fz_clock += 7u;
}

size_t aed_stack_high_water(void)
{
    return 0;
}

void aed_uart_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        aed_frame_t f;
        const aed_frame_result_t r = aed_frame_push(&aed_fz_out, data[i], &f);
        if (r < 0 || (r == AED_FRAME_OK && (!(f.code & AED_PROTO_RESPONSE_BIT) ||
                                           f.length > AED_PROTO_MAX_PAYLOAD))) {
            abort(); /* the device sent a malformed frame */
        }
    }
}

static uint8_t aed_fz_wire[AED_PROTO_MAX_WIRE];
static uint8_t aed_fz_payload[AED_PROTO_MAX_PAYLOAD];

static void aed_fz_raw(const uint8_t *data, size_t size)
{
    static aed_frame_decoder_t d, again;
    size_t i, j;
    aed_frame_decoder_init(&d);
    for (i = 0; i < size; i++) {
        aed_frame_t f, g;
        size_t n;
        aed_proto_feed(data[i]);
        if (aed_frame_push(&d, data[i], &f) != AED_FRAME_OK) {
            continue;
        }
        memcpy(aed_fz_payload, f.payload, f.length);
        n = aed_frame_encode(aed_fz_wire, sizeof aed_fz_wire, f.code, f.status, f.flags, f.seq,
                             aed_fz_payload, f.length);
        if (f.version != AED_PROTO_VERSION) {
            continue; /* the encoder always writes its own version */
        }
        aed_frame_decoder_init(&again);
        for (j = 0; j < n; j++) {
            const aed_frame_result_t r = aed_frame_push(&again, aed_fz_wire[j], &g);
            if (r < 0 || (r == AED_FRAME_OK) != (j == n - 1)) {
                abort(); /* exactly one valid frame, ending at the last byte */
            }
        }
        if (g.code != f.code || g.seq != f.seq || g.length != f.length || g.crc != f.crc ||
            memcmp(g.payload, aed_fz_payload, f.length) != 0) {
            abort(); /* decode(encode(frame)) != frame */
        }
    }
}

static void aed_fz_requests(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos + 4 <= size) {
        const uint8_t code = data[pos], seq = data[pos + 1];
        size_t len = ((size_t)data[pos + 2] | (size_t)data[pos + 3] << 8);
        len %= AED_PROTO_MAX_PAYLOAD + 1;
        size_t n, i;
        pos += 4;
        len = len < size - pos ? len : size - pos;
        memcpy(aed_fz_payload, &data[pos], len);
        pos += len;
        if (code == AED_CMD_BENCH && len >= 12) { /* keep benchmarks short: n, warmup < 4 */
            const uint8_t runs = aed_fz_payload[4] & 3u, warmup = aed_fz_payload[8] & 3u;
            memset(&aed_fz_payload[4], 0, 8);
            aed_fz_payload[4] = runs;
            aed_fz_payload[8] = warmup;
        }
        n = aed_frame_encode(aed_fz_wire, sizeof aed_fz_wire, code, 0, 0, seq, aed_fz_payload,
                             (uint16_t)len);
        for (i = 0; i < n; i++) {
            aed_proto_feed(aed_fz_wire[i]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    aed_proto_init();
    aed_frame_decoder_init(&aed_fz_out);
    if (data[0] & 1u) {
        aed_fz_requests(data + 1, size - 1);
    } else {
        aed_fz_raw(data + 1, size - 1);
    }
    return 0;
}
