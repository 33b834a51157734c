#include "aed_proto_frame.h"

/* Nibble-table CRC-32 (reflected 0x04C11DB7): 64 bytes of table, 2 lookups per byte. */
static const uint32_t aed_crc32_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu
};

uint32_t aed_crc32_update(uint32_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ aed_crc32_nibble[crc & 15u];
        crc = (crc >> 4) ^ aed_crc32_nibble[crc & 15u];
    }
    return ~crc;
}

void aed_frame_decoder_init(aed_frame_decoder_t *d)
{
    d->len = 0;
    d->wire = 0;
    d->block_left = 0;
    d->zero_pending = 0;
    d->overflow = 0;
}

static void aed_frame_append(aed_frame_decoder_t *d, uint8_t byte)
{
    if (d->len >= AED_PROTO_MAX_FRAME) {
        d->overflow = 1;
        return;
    }
    d->buf[d->len++] = byte;
}

static uint32_t aed_read_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Classify the frame just ended by a delimiter (same order as host_tools/protocol.py). */
static aed_frame_result_t aed_frame_finish(const aed_frame_decoder_t *d, aed_frame_t *out)
{
    uint16_t payload_len;
    out->seq = d->len >= 6 ? (uint16_t)(d->buf[4] | d->buf[5] << 8) : 0xFFFFu;
    if (d->overflow) {
        return AED_FRAME_TOO_LONG;
    }
    if (d->block_left != 0) {
        return AED_FRAME_COBS;
    }
    if (d->len < AED_PROTO_HEADER_BYTES + AED_PROTO_CRC_BYTES) {
        return AED_FRAME_SHORT;
    }
    payload_len = (uint16_t)(d->len - AED_PROTO_HEADER_BYTES - AED_PROTO_CRC_BYTES);
    out->crc = aed_read_u32(&d->buf[d->len - AED_PROTO_CRC_BYTES]);
    if (aed_crc32_update(0, d->buf, (size_t)d->len - AED_PROTO_CRC_BYTES) != out->crc) {
        return AED_FRAME_CRC;
    }
    if ((uint16_t)(d->buf[6] | d->buf[7] << 8) != payload_len) {
        return AED_FRAME_LENGTH;
    }
    out->version = d->buf[0];
    out->code = d->buf[1];
    out->status = d->buf[2];
    out->flags = d->buf[3];
    out->length = payload_len;
    out->payload = &d->buf[AED_PROTO_HEADER_BYTES];
    return AED_FRAME_OK;
}

aed_frame_result_t aed_frame_push(aed_frame_decoder_t *d, uint8_t byte, aed_frame_t *out)
{
    if (byte == 0) { /* delimiter: the only place a frame ends or the decoder resynchronises */
        aed_frame_result_t result = AED_FRAME_NONE;
        if (d->wire > 0) {
            result = aed_frame_finish(d, out);
        }
        aed_frame_decoder_init(d);
        return result;
    }
    if (d->wire < UINT16_MAX) {
        d->wire++;
    }
    if (d->overflow) {
        return AED_FRAME_NONE;
    }
    if (d->block_left > 0) {
        aed_frame_append(d, byte);
        d->block_left--;
        return AED_FRAME_NONE;
    }
    /* a code byte: the previous block's implicit zero is real because another block follows */
    if (d->zero_pending) {
        aed_frame_append(d, 0);
    }
    d->block_left = (uint8_t)(byte - 1u);
    d->zero_pending = byte != 0xFFu;
    return AED_FRAME_NONE;
}

typedef struct {
    uint8_t *dst;
    size_t cap;
    size_t pos;      /* next write position */
    size_t code_pos; /* where the current block's code byte goes */
    uint8_t code;
    uint8_t full;    /* dst too small */
} aed_cobs_writer_t;

static void aed_cobs_raw(aed_cobs_writer_t *w, uint8_t byte)
{
    if (w->pos >= w->cap) {
        w->full = 1;
        return;
    }
    w->dst[w->pos++] = byte;
}

static void aed_cobs_start_block(aed_cobs_writer_t *w)
{
    w->code_pos = w->pos;
    w->code = 1;
    aed_cobs_raw(w, 0); /* placeholder for the code byte */
}

static void aed_cobs_end_block(aed_cobs_writer_t *w)
{
    if (!w->full) {
        w->dst[w->code_pos] = w->code;
    }
}

static void aed_cobs_put(aed_cobs_writer_t *w, const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (data[i] == 0) {
            aed_cobs_end_block(w);
            aed_cobs_start_block(w);
            continue;
        }
        aed_cobs_raw(w, data[i]);
        if (++w->code == 0xFFu) { /* 254 data bytes: the block ends without a zero */
            aed_cobs_end_block(w);
            aed_cobs_start_block(w);
        }
    }
}

size_t aed_frame_encode(uint8_t *dst, size_t cap, uint8_t code, uint8_t status, uint8_t flags,
                        uint16_t seq, const uint8_t *payload, uint16_t length)
{
    aed_cobs_writer_t w;
    uint8_t header[AED_PROTO_HEADER_BYTES], crc_bytes[AED_PROTO_CRC_BYTES];
    uint32_t crc;
    if (length > AED_PROTO_MAX_PAYLOAD) {
        return 0;
    }
    header[0] = AED_PROTO_VERSION;
    header[1] = code;
    header[2] = status;
    header[3] = flags;
    header[4] = (uint8_t)(seq & 0xFFu);
    header[5] = (uint8_t)(seq >> 8);
    header[6] = (uint8_t)(length & 0xFFu);
    header[7] = (uint8_t)(length >> 8);
    crc = aed_crc32_update(0, header, sizeof header);
    crc = aed_crc32_update(crc, payload, length);
    crc_bytes[0] = (uint8_t)crc;
    crc_bytes[1] = (uint8_t)(crc >> 8);
    crc_bytes[2] = (uint8_t)(crc >> 16);
    crc_bytes[3] = (uint8_t)(crc >> 24);
    w.dst = dst;
    w.cap = cap;
    w.pos = 0;
    w.full = 0;
    aed_cobs_raw(&w, 0); /* leading delimiter: ends any garbage the receiver holds */
    aed_cobs_start_block(&w);
    aed_cobs_put(&w, header, sizeof header);
    aed_cobs_put(&w, payload, length);
    aed_cobs_put(&w, crc_bytes, sizeof crc_bytes);
    aed_cobs_end_block(&w);
    aed_cobs_raw(&w, 0);
    return w.full ? 0 : w.pos;
}
