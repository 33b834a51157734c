/* aedfw serial protocol: frame codec (CRC-32, COBS framing), independent of the handlers.
 * Spec: docs/protocol.md. C99, no malloc; one decoder per link, fed one byte at a time. */
#ifndef AED_PROTO_FRAME_H
#define AED_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* AED_PROTO_VERSION, AED_PROTO_MAX_PAYLOAD (the largest payload this device accepts and sends,
 * announced in HELLO), AED_PROTO_HAS_MODEL and the HELLO bytes; generated per package. */
#include "aed_proto_config.h"

#define AED_PROTO_HEADER_BYTES 8
#define AED_PROTO_CRC_BYTES 4
#define AED_PROTO_MAX_FRAME (AED_PROTO_HEADER_BYTES + AED_PROTO_MAX_PAYLOAD + AED_PROTO_CRC_BYTES)
/* Wire size of a largest frame: two delimiters, COBS adds one byte per 254 plus one. */
#define AED_PROTO_MAX_WIRE (AED_PROTO_MAX_FRAME + AED_PROTO_MAX_FRAME / 254 + 3)
#define AED_PROTO_RESPONSE_BIT 0x80u
#define AED_PROTO_NAK 0x80u
#define AED_PROTO_FLAG_RESET 0x01u

/* What aed_frame_push reports. */
typedef enum {
    AED_FRAME_NONE = 0,      /* no frame completed by this byte */
    AED_FRAME_OK = 1,        /* a valid frame: see the aed_frame_t */
    AED_FRAME_TOO_LONG = -1, /* decodes to more than AED_PROTO_MAX_FRAME bytes */
    AED_FRAME_COBS = -2,     /* ends inside a COBS block */
    AED_FRAME_SHORT = -3,    /* shorter than a header and a CRC */
    AED_FRAME_CRC = -4,      /* CRC mismatch */
    AED_FRAME_LENGTH = -5    /* length field disagrees with the frame size */
} aed_frame_result_t;

/* A decoded frame; payload points into the decoder (valid until the next push). */
typedef struct {
    uint8_t version;
    uint8_t code;
    uint8_t status;
    uint8_t flags;
    uint16_t seq;
    uint16_t length;
    uint32_t crc; /* the frame's CRC: with seq, identifies a retransmitted request */
    const uint8_t *payload;
} aed_frame_t;

/* Byte-at-a-time decoder state: the decoded bytes of the frame being received. */
typedef struct {
    uint8_t buf[AED_PROTO_MAX_FRAME];
    uint16_t len;         /* decoded bytes so far */
    uint16_t wire;        /* encoded bytes so far (0: between frames) */
    uint8_t block_left;   /* data bytes still due in the current COBS block */
    uint8_t zero_pending; /* the current block ends in an implicit zero */
    uint8_t overflow;     /* too long: discard until the next delimiter */
} aed_frame_decoder_t;

/* CRC-32/ISO-HDLC (zlib): crc = aed_crc32_update(0, ...) chains; "123456789" -> 0xCBF43926. */
uint32_t aed_crc32_update(uint32_t crc, const uint8_t *data, size_t n);

void aed_frame_decoder_init(aed_frame_decoder_t *d);

/* Feed one received byte. On AED_FRAME_OK fills *out; on an error fills out->seq with the
 * (unverified) header seq when at least 6 bytes decoded, else 0xFFFF. */
aed_frame_result_t aed_frame_push(aed_frame_decoder_t *d, uint8_t byte, aed_frame_t *out);

/* Encode one frame (0x00, COBS(header, payload, CRC), 0x00) into dst; returns the wire size,
 * or 0 when cap is too small or length exceeds AED_PROTO_MAX_PAYLOAD. */
size_t aed_frame_encode(uint8_t *dst, size_t cap, uint8_t code, uint8_t status, uint8_t flags,
                        uint16_t seq, const uint8_t *payload, uint16_t length);

#endif /* AED_PROTO_FRAME_H */
