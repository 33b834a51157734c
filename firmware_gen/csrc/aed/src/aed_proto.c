#include "aed_proto.h"

#include <string.h>

#include "aed_frontend.h"
#include "aed_platform.h"
#if AED_PROTO_HAS_MODEL
#include "aed_model.h"
#include "aed_post.h"
#if AED_PROTO_TASK_ANOMALY
#include "aed_anomaly.h"
#endif

#if AED_MODEL_IN_FRAMES != AED_PROTO_WINDOW_FRAMES || AED_POST_WINDOW_FRAMES != AED_MODEL_IN_FRAMES
#error "aed_model.h, aed_post.h and the protocol disagree on the window length"
#endif
#if AED_MODEL_IN_MELS != AED_FE_N_MELS
#error "aed_model.h does not match the front end's mel bands"
#endif
/* The engine writes AED_MODEL_N_CLASSES int8 outputs per window. Tagging sends them as the
 * window's scores; an anomaly detector (e.g. an autoencoder's reconstruction) reduces them to
 * one u32 window score (aed_anomaly.h) and sends that. */
#if AED_PROTO_TASK_ANOMALY
#if AED_PROTO_MODEL_CLASSES != 1
#error "an anomaly protocol build has one score per window"
#endif
#define AED_SCORE_BYTES 4u   /* u32 window score */
#define AED_SUMMARY_TAIL 13u /* u64 score sum, u32 score windows, u8 decision */
#else
#if AED_MODEL_N_CLASSES != AED_PROTO_MODEL_CLASSES || AED_N_CLASSES != AED_MODEL_N_CLASSES
#error "aed_model.h, aed_config.h and the protocol disagree on the class count"
#endif
#define AED_SCORE_BYTES AED_MODEL_N_CLASSES
#define AED_SUMMARY_TAIL (2u * AED_MODEL_N_CLASSES) /* int8 clip scores, u8 decisions */
#endif
#if AED_PROTO_MACHINE_IDS > 0 && (!AED_PROTO_TASK_ANOMALY || \
                                  AED_PROTO_MACHINE_IDS > AED_ANOMALY_ID_N_CLASSES)
#error "MACHINE_ID needs an ID classifier with a class per machine ID"
#endif
#define AED_PROTO_OUTPUTS AED_MODEL_N_CLASSES
#define AED_PROTO_ACTIVATION_BYTES AED_MODEL_ACTIVATION_BYTES
#define AED_WINDOW_RECORD (8u + AED_SCORE_BYTES)
#define AED_CLASSIFY_SUMMARY (20u + AED_SUMMARY_TAIL)
#else
#define AED_PROTO_ACTIVATION_BYTES 0
#endif

#define AED_STREAM_NONE 0u
#define AED_STREAM_FEATURES 1u
#define AED_STREAM_INFER 2u
#define AED_STREAM_CLASSIFY 3u
#define AED_CLASSIFY_BEGIN 0x01u
#define AED_CLASSIFY_END 0x02u
#define AED_CLASSIFY_OPT_FEATURES 0x01u
#define AED_CLASSIFY_OPT_WINDOWS 0x02u
#define AED_BENCH_SAMPLES (AED_FE_WINDOW_LENGTH > AED_PROTO_MAX_PAYLOAD / 2 ? \
                           AED_FE_WINDOW_LENGTH : AED_PROTO_MAX_PAYLOAD / 2)

/* Device identity, reported by HELLO (generated from the model's metadata). */
static const uint8_t aed_hello_fixed[] = AED_PROTO_HELLO;

typedef struct {
    uint32_t rx_frames, rx_errors, duplicates, naks;
    uint32_t fe_frames, fe_cycles_max, model_runs, model_cycles_max;
    uint64_t fe_cycles, model_cycles;
} aed_proto_stats_t;

static aed_frame_decoder_t aed_rx;
static uint8_t aed_tx[AED_PROTO_MAX_WIRE]; /* last response, replayed for a retransmission */
static size_t aed_tx_len;
static uint8_t aed_nak[AED_PROTO_HEADER_BYTES + AED_PROTO_CRC_BYTES + 4];
static uint8_t aed_payload[AED_PROTO_MAX_PAYLOAD]; /* response payload under construction */
static int16_t aed_samples[AED_BENCH_SAMPLES];
static uint16_t aed_last_seq;
static uint32_t aed_last_crc;
static uint8_t aed_have_last;
static uint8_t aed_flags;
static uint8_t aed_stream;
static aed_frontend_t aed_fe;
static uint32_t aed_fe_acc; /* cycles of the front-end frame in progress */
static aed_proto_stats_t aed_stats;
#if AED_PROTO_HAS_MODEL
/* CLASSIFY's window assembly; its ring (one window of rows) doubles as the INFER input buffer
 * (one stream at a time), so the protocol adds no window-sized buffer of its own. */
static aed_post_t aed_post;
static int8_t aed_scores[AED_PROTO_OUTPUTS]; /* the engine's output of the last window */
static uint32_t aed_infer_loaded;            /* bytes of the INFER window received so far */
static struct {
    uint8_t options;
    uint32_t n_frames; /* frames so far */
    uint32_t fe_cycles, model_cycles, post_cycles;
} aed_clip;
#if AED_PROTO_TASK_ANOMALY
static aed_anomaly_clip_t aed_anomaly; /* the clip mean as (sum, windows) */
#endif
#endif

static void aed_put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void aed_put_u32(uint8_t *p, uint32_t v)
{
    aed_put_u16(p, v);
    aed_put_u16(p + 2, v >> 16);
}

static void aed_put_u64(uint8_t *p, uint64_t v)
{
    aed_put_u32(p, (uint32_t)v);
    aed_put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t aed_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Little-endian int16 samples from the payload (alignment- and endian-independent). */
static size_t aed_get_samples(const uint8_t *p, size_t n_bytes)
{
    size_t i, n = n_bytes / 2;
    for (i = 0; i < n; i++) {
        aed_samples[i] = (int16_t)(uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    }
    return n;
}

/* An error response: the status plus a short text naming what was wrong. */
typedef struct {
    uint8_t status;
    uint16_t length;
} aed_reply_t;

static aed_reply_t aed_error(uint8_t status, const char *why)
{
    aed_reply_t r;
    size_t n = strlen(why);
    memcpy(aed_payload, why, n);
    r.status = status;
    r.length = (uint16_t)n;
    return r;
}

static aed_reply_t aed_ok(size_t length)
{
    aed_reply_t r;
    r.status = AED_STATUS_OK;
    r.length = (uint16_t)length;
    return r;
}

/* Stream n samples through the front end; each completed row goes to rows (if not NULL) and to
 * on_row. Returns the number of rows. */
static size_t aed_feed_samples(size_t n, int8_t *rows, void (*on_row)(const int8_t *row))
{
    static int8_t row[AED_FE_N_MELS];
    size_t pos = 0, count = 0;
    while (pos < n) {
        int ready = 0;
        const uint32_t t0 = aed_cycles();
        pos += aed_frontend_feed(&aed_fe, &aed_samples[pos], n - pos, row, &ready);
        aed_fe_acc += aed_cycles() - t0;
        if (ready) {
            aed_stats.fe_frames++;
            aed_stats.fe_cycles += aed_fe_acc;
            if (aed_fe_acc > aed_stats.fe_cycles_max) {
                aed_stats.fe_cycles_max = aed_fe_acc;
            }
#if AED_PROTO_HAS_MODEL
            aed_clip.fe_cycles += aed_fe_acc;
#endif
            aed_fe_acc = 0;
            if (rows != NULL) {
                memcpy(&rows[count * AED_FE_N_MELS], row, AED_FE_N_MELS);
            }
            if (on_row != NULL) {
                on_row(row);
            }
            count++;
        }
    }
    return count;
}

static size_t aed_max_rows(size_t n_samples)
{
    return (n_samples + AED_FE_HOP_LENGTH - 1) / AED_FE_HOP_LENGTH;
}

static void aed_reset_stream(uint8_t stream)
{
    aed_frontend_init(&aed_fe);
    aed_fe_acc = 0;
    aed_stream = stream;
#if AED_PROTO_HAS_MODEL
    aed_infer_loaded = 0;
#endif
}

static aed_reply_t aed_hello(void)
{
    memcpy(aed_payload, aed_hello_fixed, sizeof aed_hello_fixed);
    return aed_ok(sizeof aed_hello_fixed);
}

/* FEATURES: u8 flags (bit0: start a new stream), u8 0, int16 samples -> u16 rows, rows. */
static aed_reply_t aed_features(const uint8_t *p, size_t len)
{
    size_t n;
    if (len < 2 || len % 2 != 0) {
        return aed_error(AED_STATUS_BAD_LENGTH, "FEATURES: payload must be 2 + 2 * samples bytes");
    }
    n = (len - 2) / 2;
    if (2 + aed_max_rows(n) * AED_FE_N_MELS > AED_PROTO_MAX_PAYLOAD) {
        return aed_error(AED_STATUS_BAD_LENGTH, "FEATURES: too many samples for one response");
    }
    if (p[0] & 1u) {
        aed_reset_stream(AED_STREAM_FEATURES);
    } else if (aed_stream != AED_STREAM_FEATURES) {
        return aed_error(AED_STATUS_BAD_STATE, "FEATURES: no stream; set the start flag");
    }
    n = aed_feed_samples(aed_get_samples(p + 2, len - 2), (int8_t *)&aed_payload[2], NULL);
    aed_put_u16(aed_payload, (uint32_t)n);
    return aed_ok(2 + n * AED_FE_N_MELS);
}
#if AED_PROTO_HAS_MODEL

static uint32_t aed_run_model(const int8_t *in)
{
    uint32_t t0 = aed_cycles(), dt;
    aed_model_run(in, aed_scores);
    dt = aed_cycles() - t0;
    aed_stats.model_runs++;
    aed_stats.model_cycles += dt;
    if (dt > aed_stats.model_cycles_max) {
        aed_stats.model_cycles_max = dt;
    }
    return dt;
}

/* The window's score bytes as the protocol sends them: the int8 outputs (tagging) or the u32
 * anomaly score of window and output (anomaly; its cycles count as post-processing). */
static void aed_put_window_scores(uint8_t *dst, const int8_t *window)
{
#if AED_PROTO_TASK_ANOMALY
    const uint32_t t0 = aed_cycles();
    const uint32_t score = aed_anomaly_window_score(window, aed_scores);
    aed_clip.post_cycles += aed_cycles() - t0;
    aed_put_u32(dst, score);
#else
    (void)window;
    memcpy(dst, aed_scores, AED_SCORE_BYTES);
#endif
}

/* INFER: u8 flags (bit0: run), u8 0, u16 0, u32 offset, window bytes -> u32 loaded
 * [, u32 cycles, scores (int8 per class, or the u32 anomaly score)]. The window arrives in
 * order; offset 0 starts a new one. */
static aed_reply_t aed_infer(const uint8_t *p, size_t len)
{
    const uint32_t size = AED_PROTO_WINDOW_FRAMES * AED_FE_N_MELS;
    uint32_t offset, n;
    if (len < 8) {
        return aed_error(AED_STATUS_BAD_LENGTH, "INFER: payload shorter than 8 bytes");
    }
    offset = aed_get_u32(p + 4);
    n = (uint32_t)len - 8;
    if (offset == 0) {
        aed_reset_stream(AED_STREAM_INFER);
    } else if (aed_stream != AED_STREAM_INFER || offset != aed_infer_loaded) {
        return aed_error(AED_STATUS_BAD_STATE, "INFER: offset does not continue the window");
    }
    if (n > size - offset) {
        return aed_error(AED_STATUS_BAD_ARGUMENT, "INFER: data beyond the window");
    }
    if ((p[0] & 1u) && offset + n != size) {
        return aed_error(AED_STATUS_BAD_STATE, "INFER: run before the whole window arrived");
    }
    memcpy(&aed_post.ring[offset], p + 8, n);
    aed_infer_loaded = offset + n;
    aed_put_u32(aed_payload, aed_infer_loaded);
    if (!(p[0] & 1u)) {
        return aed_ok(4);
    }
    aed_put_u32(aed_payload + 4, aed_run_model(aed_post.ring));
    aed_put_window_scores(aed_payload + 8, aed_post.ring);
    return aed_ok(8 + AED_SCORE_BYTES);
}

/* CLASSIFY response under construction: rows at the front, window records in a staging area
 * behind the largest possible rows block (moved down when the request is done). */
static struct {
    uint8_t *records;
    size_t n_records;
} aed_out;

static void aed_classify_window(const int8_t *window)
{
    const uint32_t start = aed_clip.n_frames >= AED_PROTO_WINDOW_FRAMES
                               ? aed_clip.n_frames - AED_PROTO_WINDOW_FRAMES
                               : 0;
    const uint32_t dt = aed_run_model(window);
    uint8_t score[AED_SCORE_BYTES];
    aed_clip.model_cycles += dt;
    aed_put_window_scores(score, window);
#if AED_PROTO_TASK_ANOMALY
    aed_anomaly_clip_add(&aed_anomaly, aed_get_u32(score));
#else
    aed_post_add_scores(&aed_post, aed_scores);
#endif
    if (aed_clip.options & AED_CLASSIFY_OPT_WINDOWS) {
        uint8_t *rec = &aed_out.records[aed_out.n_records++ * AED_WINDOW_RECORD];
        aed_put_u32(rec, start);
        aed_put_u32(rec + 4, dt);
        memcpy(rec + 8, score, AED_SCORE_BYTES);
    }
}

/* One new feature row: aed_post hands out windows as model_dev.arch.window_starts cuts them. */
static void aed_classify_row(const int8_t *row)
{
    const int8_t *window;
    aed_clip.n_frames++;
    window = aed_post_push(&aed_post, row);
    if (window != NULL) {
        aed_classify_window(window);
    }
}

/* CLASSIFY: u8 op (bit0 begin, bit1 end), u8 options (with begin: bit0 rows, bit1 windows),
 * int16 samples -> u16 rows, u16 windows, rows, window records [, clip summary]. */
static aed_reply_t aed_classify(const uint8_t *p, size_t len)
{
    const uint8_t op = len >= 2 ? p[0] : 0;
    const uint8_t options = (op & AED_CLASSIFY_BEGIN) ? p[1] : aed_clip.options;
    const int rows_out = (options & AED_CLASSIFY_OPT_FEATURES) != 0;
    size_t n, rows_max, size, n_rows;
    uint8_t *dst;
    uint32_t t0;
    if (len < 2 || len % 2 != 0) {
        return aed_error(AED_STATUS_BAD_LENGTH, "CLASSIFY: payload must be 2 + 2 * samples bytes");
    }
    n = (len - 2) / 2;
    rows_max = aed_max_rows(n);
    size = 4 + (rows_out ? rows_max * AED_FE_N_MELS : 0) +
           ((options & AED_CLASSIFY_OPT_WINDOWS) ? (rows_max + 1) * AED_WINDOW_RECORD : 0) +
           ((op & AED_CLASSIFY_END) ? AED_CLASSIFY_SUMMARY : 0);
    if (size > AED_PROTO_MAX_PAYLOAD) {
        return aed_error(AED_STATUS_BAD_LENGTH, "CLASSIFY: too many samples for one response");
    }
    if (op & AED_CLASSIFY_BEGIN) {
        aed_reset_stream(AED_STREAM_CLASSIFY);
        memset(&aed_clip, 0, sizeof aed_clip);
        aed_post_init(&aed_post);
#if AED_PROTO_TASK_ANOMALY
        aed_anomaly_clip_init(&aed_anomaly);
#endif
        aed_clip.options = options;
    } else if (aed_stream != AED_STREAM_CLASSIFY) {
        return aed_error(AED_STATUS_BAD_STATE, "CLASSIFY: no clip in progress; set begin");
    }
    aed_out.records = &aed_payload[4 + (rows_out ? rows_max * AED_FE_N_MELS : 0)];
    aed_out.n_records = 0;
    n = aed_get_samples(p + 2, len - 2);
    n_rows = aed_feed_samples(n, rows_out ? (int8_t *)&aed_payload[4] : NULL, aed_classify_row);
    if (op & AED_CLASSIFY_END) {
        const int8_t *window = aed_post_finish(&aed_post);
        if (window != NULL) {
            aed_classify_window(window);
        }
    }
    if (!rows_out) {
        n_rows = 0;
    }
    aed_put_u16(aed_payload, (uint32_t)n_rows);
    aed_put_u16(aed_payload + 2, (uint32_t)aed_out.n_records);
    dst = &aed_payload[4 + n_rows * AED_FE_N_MELS];
    memmove(dst, aed_out.records, aed_out.n_records * AED_WINDOW_RECORD);
    dst += aed_out.n_records * AED_WINDOW_RECORD;
    if (op & AED_CLASSIFY_END) {
        t0 = aed_cycles();
#if AED_PROTO_TASK_ANOMALY
        dst[32] = aed_anomaly_decide(&aed_anomaly);
        aed_put_u64(dst + 20, aed_anomaly.sum);
        aed_put_u32(dst + 28, aed_anomaly.n_windows);
#else
        (void)aed_post_decide(aed_post.clip_scores, dst + 20 + AED_MODEL_N_CLASSES);
        memcpy(dst + 20, aed_post.clip_scores, AED_MODEL_N_CLASSES);
#endif
        aed_put_u32(dst, aed_clip.n_frames);
        aed_put_u32(dst + 4, aed_post.n_windows);
        aed_put_u32(dst + 8, aed_clip.fe_cycles);
        aed_put_u32(dst + 12, aed_clip.model_cycles);
        aed_put_u32(dst + 16, aed_clip.post_cycles + (aed_cycles() - t0));
        dst += AED_CLASSIFY_SUMMARY;
        aed_stream = AED_STREAM_NONE;
    }
    return aed_ok((size_t)(dst - aed_payload));
}
#endif

#if AED_PROTO_MACHINE_IDS > 0
/* MACHINE_ID: [u8 index] -> u8 index: the ID classifier's own machine ID (a class index, the
 * order of HELLO's list; the classes after it, e.g. pseudo-instances, are no machine), set when
 * given, then read back. */
static aed_reply_t aed_machine_id(const uint8_t *p, size_t len)
{
    if (len > 1) {
        return aed_error(AED_STATUS_BAD_LENGTH, "MACHINE_ID: payload must be 0 or 1 byte");
    }
    if (len == 1 && (p[0] >= AED_PROTO_MACHINE_IDS || aed_anomaly_set_machine_id(p[0]) != 0)) {
        return aed_error(AED_STATUS_BAD_ARGUMENT, "MACHINE_ID: index beyond the machine IDs");
    }
    aed_payload[0] = (uint8_t)aed_anomaly_machine_id();
    return aed_ok(1);
}
#endif

/* BENCH: u8 target (0 model on the INFER window, 1 front-end frame), u8 0, u16 0, u32 n,
 * u32 warmup -> u8 target, 3 x u8 0, u32 n, u32 warmup, u32 min, u32 max, u64 total. */
static aed_reply_t aed_bench(const uint8_t *p, size_t len)
{
    uint32_t n, warmup, i, lo = UINT32_MAX, hi = 0, state = 12345u;
    uint64_t total = 0;
    static int8_t row[AED_FE_N_MELS];
    if (len != 12) {
        return aed_error(AED_STATUS_BAD_LENGTH, "BENCH: payload must be 12 bytes");
    }
    n = aed_get_u32(p + 4);
    warmup = aed_get_u32(p + 8);
    if (n == 0 || warmup > UINT32_MAX - n) {
        return aed_error(AED_STATUS_BAD_ARGUMENT, "BENCH: n must be >= 1 and n + warmup < 2^32");
    }
    if (p[0] == 1) { /* a fixed pseudo-random frame */
        for (i = 0; i < AED_BENCH_SAMPLES; i++) {
            state = state * 1103515245u + 12345u;
            aed_samples[i] = (int16_t)(uint16_t)(state >> 16);
        }
        aed_stream = AED_STREAM_NONE;
    }
#if AED_PROTO_HAS_MODEL
    else if (p[0] != 0) {
        return aed_error(AED_STATUS_BAD_ARGUMENT, "BENCH: target must be 0 (model) or 1");
    }
#else
    else {
        return aed_error(AED_STATUS_UNSUPPORTED, "BENCH: this build has no model; target 1 only");
    }
#endif
    for (i = 0; i < warmup + n; i++) {
        uint32_t t0 = 0, dt;
#if AED_PROTO_HAS_MODEL
        if (p[0] == 0) {
            t0 = aed_cycles();
            aed_model_run(aed_post.ring, aed_scores);
        } else
#endif
        {
            t0 = aed_cycles();
            aed_frontend_frame(&aed_fe, aed_samples, row);
        }
        dt = aed_cycles() - t0;
        if (i >= warmup) {
            total += dt;
            lo = dt < lo ? dt : lo;
            hi = dt > hi ? dt : hi;
        }
    }
    memset(aed_payload, 0, 4);
    aed_payload[0] = p[0];
    aed_put_u32(aed_payload + 4, n);
    aed_put_u32(aed_payload + 8, warmup);
    aed_put_u32(aed_payload + 12, lo);
    aed_put_u32(aed_payload + 16, hi);
    aed_put_u64(aed_payload + 20, total);
    return aed_ok(28);
}

/* STATS: [u8 flags (bit0: clear after reading)] -> counters (docs/protocol.md). */
static aed_reply_t aed_stats_reply(const uint8_t *p, size_t len)
{
    const aed_proto_stats_t *s = &aed_stats;
    uint32_t stack_used = UINT32_MAX;
#ifdef AED_PLATFORM_STACK_USED
    stack_used = (uint32_t)AED_PLATFORM_STACK_USED();
#endif
    if (len > 1) {
        return aed_error(AED_STATUS_BAD_LENGTH, "STATS: payload must be 0 or 1 byte");
    }
    aed_put_u32(aed_payload, s->rx_frames);
    aed_put_u32(aed_payload + 4, s->rx_errors);
    aed_put_u32(aed_payload + 8, s->duplicates);
    aed_put_u32(aed_payload + 12, s->naks);
    aed_put_u32(aed_payload + 16, s->fe_frames);
    aed_put_u64(aed_payload + 20, s->fe_cycles);
    aed_put_u32(aed_payload + 28, s->fe_cycles_max);
    aed_put_u32(aed_payload + 32, s->model_runs);
    aed_put_u64(aed_payload + 36, s->model_cycles);
    aed_put_u32(aed_payload + 44, s->model_cycles_max);
    aed_put_u32(aed_payload + 48, stack_used);
    aed_put_u32(aed_payload + 52, AED_PROTO_ACTIVATION_BYTES);
    aed_put_u32(aed_payload + 56, (uint32_t)(sizeof aed_rx + sizeof aed_tx + sizeof aed_payload +
                                             sizeof aed_samples + sizeof aed_fe
#if AED_PROTO_HAS_MODEL
                                             + sizeof aed_post
#endif
#if AED_PROTO_TASK_ANOMALY
                                             + sizeof aed_anomaly
#endif
                                             ));
    if (len == 1 && (p[0] & 1u)) {
        memset(&aed_stats, 0, sizeof aed_stats);
    }
    return aed_ok(60);
}

static aed_reply_t aed_dispatch(const aed_frame_t *f)
{
    if (f->version != AED_PROTO_VERSION) {
        return aed_error(AED_STATUS_BAD_VERSION, "protocol version not supported");
    }
    switch (f->code) {
    case AED_CMD_HELLO:
        return aed_hello();
    case AED_CMD_FEATURES:
        return aed_features(f->payload, f->length);
#if AED_PROTO_HAS_MODEL
    case AED_CMD_INFER:
        return aed_infer(f->payload, f->length);
    case AED_CMD_CLASSIFY:
        return aed_classify(f->payload, f->length);
#else
    case AED_CMD_INFER:
    case AED_CMD_CLASSIFY:
        return aed_error(AED_STATUS_UNSUPPORTED, "this build has no model");
#endif
    case AED_CMD_BENCH:
        return aed_bench(f->payload, f->length);
    case AED_CMD_STATS:
        return aed_stats_reply(f->payload, f->length);
    case AED_CMD_RESET:
        aed_proto_init();
        return aed_ok(0);
    case AED_CMD_MACHINE_ID:
#if AED_PROTO_MACHINE_IDS > 0
        return aed_machine_id(f->payload, f->length);
#else
        return aed_error(AED_STATUS_UNSUPPORTED, "MACHINE_ID: this model's score uses none");
#endif
    default:
        return aed_error(AED_STATUS_UNKNOWN_COMMAND, "unknown command");
    }
}

void aed_proto_init(void)
{
    aed_frame_decoder_init(&aed_rx);
    aed_tx_len = 0;
    aed_have_last = 0;
    aed_flags = AED_PROTO_FLAG_RESET;
    memset(&aed_stats, 0, sizeof aed_stats);
    aed_reset_stream(AED_STREAM_NONE);
#if AED_PROTO_MACHINE_IDS > 0
    (void)aed_anomaly_set_machine_id(AED_ANOMALY_MACHINE_ID); /* the build-time own ID */
#endif
}

void aed_proto_feed(uint8_t byte)
{
    aed_frame_t f;
    aed_reply_t r;
    const aed_frame_result_t result = aed_frame_push(&aed_rx, byte, &f);
    if (result == AED_FRAME_NONE) {
        return;
    }
    if (result != AED_FRAME_OK) {
        aed_stats.rx_errors++;
        if (result != AED_FRAME_SHORT) { /* ask for a retransmission; not cached */
            const uint8_t status = (result == AED_FRAME_TOO_LONG || result == AED_FRAME_LENGTH)
                                       ? AED_STATUS_BAD_LENGTH
                                       : AED_STATUS_BAD_CRC;
            aed_stats.naks++;
            aed_uart_write(aed_nak, aed_frame_encode(aed_nak, sizeof aed_nak, AED_PROTO_NAK,
                                                     status, aed_flags, f.seq, NULL, 0));
        }
        return;
    }
    if (f.code & AED_PROTO_RESPONSE_BIT) { /* a response (echo or another device): ignore */
        return;
    }
    aed_stats.rx_frames++;
    if (aed_have_last && f.seq == aed_last_seq && f.crc == aed_last_crc) {
        aed_stats.duplicates++; /* the host missed our answer: resend it, do not re-execute */
        aed_uart_write(aed_tx, aed_tx_len);
        return;
    }
    aed_last_seq = f.seq;
    aed_last_crc = f.crc;
    r = aed_dispatch(&f);
    aed_have_last = 1; /* after dispatch: RESET clears the cache but its answer is cached */
    aed_tx_len = aed_frame_encode(aed_tx, sizeof aed_tx, (uint8_t)(f.code | AED_PROTO_RESPONSE_BIT),
                                  r.status, aed_flags, f.seq, aed_payload, r.length);
    if (f.code == AED_CMD_HELLO && f.version == AED_PROTO_VERSION) {
        aed_flags = 0; /* the host has seen this boot */
    }
    aed_uart_write(aed_tx, aed_tx_len);
}

void aed_proto_run(void)
{
    int c;
    aed_proto_init();
    while ((c = aed_uart_getc()) >= 0) {
        aed_proto_feed((uint8_t)c);
    }
}
