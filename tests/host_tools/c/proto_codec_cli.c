/* Host harness for the C frame codec (tests check it against host_tools/protocol.py).
 *
 * decode: stdin = any bytes; stdout = one line per frame event:
 *         "OK version code status flags seq length crc payload-hex" or "ERR kind seq".
 * encode: stdin = records [u8 code][u8 status][u8 flags][u16 seq][u16 length][payload];
 *         stdout = the wire bytes of each frame.
 */
#include <stdio.h>
#include <string.h>

#include "aed_proto_frame.h"

static aed_frame_decoder_t dec;
static uint8_t wire[AED_PROTO_MAX_WIRE];
static uint8_t payload[AED_PROTO_MAX_PAYLOAD];

static const char *kind(aed_frame_result_t r)
{
    switch (r) {
    case AED_FRAME_TOO_LONG: return "too_long";
    case AED_FRAME_COBS: return "cobs";
    case AED_FRAME_SHORT: return "short";
    case AED_FRAME_CRC: return "crc";
    case AED_FRAME_LENGTH: return "length";
    default: return "?";
    }
}

static int decode(void)
{
    int c;
    aed_frame_decoder_init(&dec);
    while ((c = getchar()) != EOF) {
        aed_frame_t f;
        const aed_frame_result_t r = aed_frame_push(&dec, (uint8_t)c, &f);
        if (r == AED_FRAME_OK) {
            uint16_t i;
            printf("OK %u %u %u %u %u %u %lu ", f.version, f.code, f.status, f.flags, f.seq,
                   f.length, (unsigned long)f.crc);
            for (i = 0; i < f.length; i++) {
                printf("%02x", f.payload[i]);
            }
            printf("\n");
        } else if (r != AED_FRAME_NONE) {
            printf("ERR %s %u\n", kind(r), f.seq);
        }
    }
    return 0;
}

static int encode(void)
{
    uint8_t h[7];
    while (fread(h, 1, sizeof h, stdin) == sizeof h) {
        const uint16_t seq = (uint16_t)(h[3] | h[4] << 8), len = (uint16_t)(h[5] | h[6] << 8);
        size_t n;
        if (len > sizeof payload || fread(payload, 1, len, stdin) != len) {
            fprintf(stderr, "proto_codec_cli: bad record\n");
            return 2;
        }
        n = aed_frame_encode(wire, sizeof wire, h[0], h[1], h[2], seq, payload, len);
        if (n == 0) {
            fprintf(stderr, "proto_codec_cli: encode failed\n");
            return 2;
        }
        fwrite(wire, 1, n, stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "encode") == 0) {
        return encode();
    }
    return decode();
}
