/*
 * resampler_compare.c — the measurement behind lib/codec/mod.ts's resampler choice: miniaudio's
 * linear resampler (lpfOrder 0/4/8), speexdsp (quality 8/10) and libsoxr (HQ/VHQ, passband 0.91)
 * against ffmpeg's `aresample=resampler=soxr`, SNR after the best integer alignment (±64).
 * Not part of the build or the tests. Needs the cached miniaudio header (deno task build:native)
 * and Debian libsoxr0 + libspeexdsp1 (no -dev packages: prototypes are declared here).
 *
 *   cc -O2 -I .cache/native -o /tmp/rc bench/resampler_compare.c \
 *      /usr/lib/x86_64-linux-gnu/libsoxr.so.0 /usr/lib/x86_64-linux-gnu/libspeexdsp.so.1 -lm -lpthread -ldl
 *   s=songs/05-square-lullaby.wav   # rate 22050, 1 channel (or songs/06-harbour-chorale.flac 44100 2)
 *   ffmpeg -v error -i $s -f f32le -c:a pcm_f32le /tmp/in.f32
 *   ffmpeg -v error -i $s -af aresample=resampler=soxr -ar 48000 -f f32le -c:a pcm_f32le /tmp/ref.f32
 *   /tmp/rc /tmp/in.f32 /tmp/ref.f32 22050 1
 *
 * speexdsp is run without a flush (its tail is missing, hence the shorter output); speed is one
 * call including filter set-up, so it is only indicative (bench/codec.ts measures ours properly).
 */
#define MINIAUDIO_IMPLEMENTATION
#define MA_NO_DEVICE_IO
#define MA_NO_ENCODING
#define MA_NO_DECODING
#define MA_NO_ENGINE
#define MA_NO_RESOURCE_MANAGER
#define MA_NO_NODE_GRAPH
#include "miniaudio.h"
#include <stdio.h>
#include <math.h>
#include <time.h>
typedef struct { int itype, otype; double scale; void* e; unsigned long flags; } soxr_io_spec_t;
typedef struct { double precision, phase_response, passband_end, stopband_begin; void* e; unsigned long flags; } soxr_quality_spec_t;
void* soxr_create(double, double, unsigned, const char**, const soxr_io_spec_t*, const soxr_quality_spec_t*, const void*);
const char* soxr_process(void*, const void*, size_t, size_t*, void*, size_t, size_t*);
soxr_io_spec_t soxr_io_spec(int, int);
soxr_quality_spec_t soxr_quality_spec(unsigned long, unsigned long);
void soxr_delete(void*);
void* speex_resampler_init(unsigned, unsigned, unsigned, int, int*);
int speex_resampler_process_interleaved_float(void*, const float*, unsigned*, float*, unsigned*);
int speex_resampler_skip_zeros(void*);
int speex_resampler_get_input_latency(void*);
int speex_resampler_get_output_latency(void*);

static float* readf(const char* p, long* n) { FILE* f = fopen(p, "rb"); fseek(f, 0, SEEK_END); long b = ftell(f); fseek(f, 0, SEEK_SET); float* d = malloc(b); fread(d, 1, b, f); fclose(f); *n = b / 4; return d; }
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void snr(const char* name, const float* ref, long nref, const float* x, long nx, int ch, double secs, double dur) {
  long fr = nref / ch, fx = nx / ch; long best = 0; double bests = -1e9;
  for (long lag = -64; lag <= 64; lag++) {
    double s = 0, e = 0;
    for (long i = 2000; i < fr - 2000; i++) { long j = i + lag; if (j < 0 || j >= fx) continue; for (int c = 0; c < ch; c++) { double r = ref[i*ch+c], d = r - x[j*ch+c]; s += r*r; e += d*d; } }
    double v = 10*log10(s/e); if (v > bests) { bests = v; best = lag; }
  }
  printf("%-28s out %ld frames (ref %ld)  lag %ld  SNR %.2f dB  speed %.0fx rt\n", name, fx, fr, best, bests, dur/secs);
}
int main(int argc, char** argv) {
  long n, nref; float* in = readf(argv[1], &n); float* ref = readf(argv[2], &nref);
  int rate = atoi(argv[3]), ch = atoi(argv[4]); long frames = n / ch; double dur = frames / (double)rate;
  long cap = (long)(frames * 48000.0 / rate) + 10000; float* out = calloc(cap * ch, 4);
  for (int order = 0; order <= 8; order += 4) {
    ma_resampler_config cfg = ma_resampler_config_init(ma_format_f32, ch, rate, 48000, ma_resample_algorithm_linear);
    cfg.linear.lpfOrder = order; ma_resampler rs; ma_resampler_init(&cfg, NULL, &rs);
    double t = now(); ma_uint64 fi = frames, fo = cap; ma_resampler_process_pcm_frames(&rs, in, &fi, out, &fo);
    char nm[64]; snprintf(nm, 64, "miniaudio linear lpf %d", order); snr(nm, ref, nref, out, fo*ch, ch, now()-t, dur);
    ma_resampler_uninit(&rs, NULL);
  }
  for (int q = 8; q <= 10; q += 2) {
    int err; void* st = speex_resampler_init(ch, rate, 48000, q, &err); speex_resampler_skip_zeros(st);
    double t = now(); unsigned il = frames, ol = cap; speex_resampler_process_interleaved_float(st, in, &il, out, &ol);
    char nm[64]; snprintf(nm, 64, "speexdsp q%d (lat %d)", q, speex_resampler_get_output_latency(st)); snr(nm, ref, nref, out, (long)ol*ch, ch, now()-t, dur);
  }
  for (int rec = 4; rec <= 6; rec += 2) {
    soxr_io_spec_t io = soxr_io_spec(0, 0); soxr_quality_spec_t q = soxr_quality_spec(rec, 0); q.passband_end = 0.91;
    const char* e = 0; void* s = soxr_create(rate, 48000, ch, &e, &io, &q, 0);
    double t = now(); size_t id, od, od2; soxr_process(s, in, frames, &id, out, cap, &od); soxr_process(s, NULL, 0, NULL, out + od*ch, cap - od, &od2);
    char nm[64]; snprintf(nm, 64, "soxr recipe %d pb .91", rec); snr(nm, ref, nref, out, (long)(od+od2)*ch, ch, now()-t, dur);
    soxr_delete(s);
  }
}
