/*
 * soundsock_audio.c — the small C ABI that lib/audio/ffi.ts binds with Deno FFI.
 *
 * Why a shim at all: Deno cannot run JavaScript on a foreign (audio) thread without blocking that
 * thread until the event loop gets to the callback, which causes glitches. So every device
 * callback lives here in C and talks to JavaScript only through lock-free single-producer /
 * single-consumer ring buffers (ma_pcm_rb) and atomic counters that JS reads with short,
 * synchronous FFI calls.
 *
 * Sample format everywhere: interleaved signed 16-bit PCM.
 *
 * Build: scripts/build_native.ts (cc -O2 -fPIC -shared ... -lm -lpthread -ldl). miniaudio loads
 * libpulse / libasound with dlopen at run time, and so do we for libopus (ss_opus_ctl_*), so we
 * link nothing but libc, libm, pthread, dl.
 */
#define MINIAUDIO_IMPLEMENTATION
/* We decode MP3 with the low-level frame decoder (ss_mp3_*) and never encode or use the
 * high-level engine / resource manager / node graph, so leave them out to keep the build small. */
#define MA_NO_ENCODING
#define MA_NO_ENGINE
#define MA_NO_RESOURCE_MANAGER
#define MA_NO_NODE_GRAPH
#define MA_NO_GENERATION
#include "miniaudio.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SS_EXPORT __attribute__((visibility("default")))

/* ABI version: ffi.ts refuses a library whose version differs (stale .so from an older shim). */
SS_EXPORT int32_t ss_abi_version(void) { return 4; }

/* Monotonic clock in nanoseconds, the same clock the callbacks use for their timestamps. */
SS_EXPORT uint64_t ss_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Human-readable text for a ma_result (static string, never freed). */
SS_EXPORT const char* ss_result_description(int32_t result) {
  return ma_result_description((ma_result)result);
}

/* ---------------------------------------------------------------------------------------------
 * Contexts. Backend choice: 0 = auto (pulse, then alsa), 1 = pulse, 2 = alsa, 3 = null.
 * "auto" deliberately leaves out the null backend: the TypeScript side falls back to null itself
 * so it can tell the user that nothing is audible.
 */
/* libasound prints every failed probe (no sound card, unknown PCM "dmix") to stderr. On machines
 * without a card that is a screenful of noise per device open, so install a silent handler. We
 * dlopen the same libasound miniaudio will dlopen (ref-counted) and keep it loaded. */
static void ss_alsa_silent(const char* file, int line, const char* fn, int err, const char* fmt,
                           ...) {
  (void)file, (void)line, (void)fn, (void)err, (void)fmt;
}

static void ss_quiet_alsa(void) {
  static int done = 0;
  if (done) return;
  done = 1;
  void* h = dlopen("libasound.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (!h) return;
  typedef int (*set_handler_fn)(void (*)(const char*, int, const char*, int, const char*, ...));
  set_handler_fn set = (set_handler_fn)dlsym(h, "snd_lib_error_set_handler");
  if (set) set(ss_alsa_silent);
}

static ma_result ss_context_init(int32_t backend, ma_context* ctx) {
  if (backend == 0 || backend == 2) ss_quiet_alsa();
  ma_backend list[2];
  ma_uint32 count = 0;
  switch (backend) {
    case 1: list[count++] = ma_backend_pulseaudio; break;
    case 2: list[count++] = ma_backend_alsa; break;
    case 3: list[count++] = ma_backend_null; break;
    default:
      list[count++] = ma_backend_pulseaudio;
      list[count++] = ma_backend_alsa;
      break;
  }
  ma_context_config cfg = ma_context_config_init();
  /* Never start a PulseAudio daemon behind the user's back. */
  cfg.pulse.tryAutoSpawn = MA_FALSE;
  cfg.pulse.pApplicationName = "soundsock";
  return ma_context_init(list, count, &cfg, ctx);
}

static int32_t ss_backend_code(ma_backend b) {
  switch (b) {
    case ma_backend_pulseaudio: return 1;
    case ma_backend_alsa: return 2;
    case ma_backend_null: return 3;
    default: return 0;
  }
}

/*
 * Lists devices as text "isDefault\tname\n" lines (playback when capture == 0, else capture) into
 * out (cap bytes, NUL-terminated). Returns the number of devices, or a negative ma_result.
 * backend_out receives the backend that was actually used.
 */
SS_EXPORT int32_t ss_list_devices(int32_t backend, int32_t capture, char* out, int32_t cap,
                                  int32_t* backend_out) {
  ma_context ctx;
  ma_result r = ss_context_init(backend, &ctx);
  if (r != MA_SUCCESS) return (int32_t)r;
  ma_device_info *play, *cap_infos;
  ma_uint32 nplay, ncap;
  r = ma_context_get_devices(&ctx, &play, &nplay, &cap_infos, &ncap);
  if (r != MA_SUCCESS) {
    ma_context_uninit(&ctx);
    return (int32_t)r;
  }
  if (backend_out) *backend_out = ss_backend_code(ctx.backend);
  ma_device_info* infos = capture ? cap_infos : play;
  ma_uint32 n = capture ? ncap : nplay;
  int32_t used = 0;
  if (cap > 0) out[0] = 0;
  for (ma_uint32 i = 0; i < n; i++) {
    int w = snprintf(out + used, cap > used ? (size_t)(cap - used) : 0, "%d\t%s\n",
                     infos[i].isDefault ? 1 : 0, infos[i].name);
    if (w < 0 || used + w >= cap) break; /* truncated: the caller's buffer is generous */
    used += w;
  }
  ma_context_uninit(&ctx);
  return (int32_t)n;
}

/* ---------------------------------------------------------------------------------------------
 * Devices (playback or capture) with a ring buffer between the audio thread and JavaScript.
 */
typedef struct {
  ma_context ctx;
  ma_device dev;
  ma_pcm_rb rb;
  int32_t capture;
  int32_t channels;
  int32_t started;
  /* Written by the audio thread, read by JS: use atomics so reads are never torn. */
  uint64_t frames_done;    /* playback: frames consumed from the ring; capture: frames captured */
  uint64_t frames_lost;    /* playback: silence frames inserted (underrun); capture: dropped */
  uint32_t underruns;      /* playback: callbacks that found the ring short while "playing" */
  uint64_t first_frame_ns; /* ss_now_ns() when the first real frame went to / came from the device */
  uint32_t playing;        /* set by JS on write, cleared on drain: short ring = underrun only then */
} ss_device;

/* Copies up to `frames` frames between the ring and `buf`. Direction: to_ring != 0 writes. */
static ma_uint32 ss_rb_transfer(ma_pcm_rb* rb, void* buf, ma_uint32 frames, ma_uint32 channels,
                                int to_ring) {
  ma_uint32 done = 0;
  /* Two passes at most: the readable / writable region may wrap around once. */
  for (int pass = 0; pass < 2 && done < frames; pass++) {
    ma_uint32 n = frames - done;
    void* p;
    if (to_ring) {
      if (ma_pcm_rb_acquire_write(rb, &n, &p) != MA_SUCCESS || n == 0) break;
      memcpy(p, (int16_t*)buf + (size_t)done * channels, (size_t)n * channels * 2);
      ma_pcm_rb_commit_write(rb, n);
    } else {
      if (ma_pcm_rb_acquire_read(rb, &n, &p) != MA_SUCCESS || n == 0) break;
      memcpy((int16_t*)buf + (size_t)done * channels, p, (size_t)n * channels * 2);
      ma_pcm_rb_commit_read(rb, n);
    }
    done += n;
  }
  return done;
}

/* Audio thread. No locks, no allocation, no JavaScript. */
static void ss_data_callback(ma_device* dev, void* out, const void* in, ma_uint32 frames) {
  ss_device* d = (ss_device*)dev->pUserData;
  if (!d->capture) {
    ma_uint32 got = ss_rb_transfer(&d->rb, out, frames, (ma_uint32)d->channels, 0);
    if (got > 0 && __atomic_load_n(&d->first_frame_ns, __ATOMIC_RELAXED) == 0) {
      __atomic_store_n(&d->first_frame_ns, ss_now_ns(), __ATOMIC_RELAXED);
    }
    if (got < frames) {
      /* miniaudio pre-silences the output buffer, but be explicit about the gap we leave. */
      memset((int16_t*)out + (size_t)got * d->channels, 0,
             (size_t)(frames - got) * d->channels * 2);
      if (__atomic_load_n(&d->playing, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&d->underruns, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&d->frames_lost, frames - got, __ATOMIC_RELAXED);
      }
    }
    __atomic_fetch_add(&d->frames_done, got, __ATOMIC_RELEASE);
  } else {
    ma_uint32 put = ss_rb_transfer(&d->rb, (void*)in, frames, (ma_uint32)d->channels, 1);
    if (put > 0 && __atomic_load_n(&d->first_frame_ns, __ATOMIC_RELAXED) == 0) {
      __atomic_store_n(&d->first_frame_ns, ss_now_ns(), __ATOMIC_RELAXED);
    }
    if (put < frames) __atomic_fetch_add(&d->frames_lost, frames - put, __ATOMIC_RELAXED);
    __atomic_fetch_add(&d->frames_done, put, __ATOMIC_RELEASE);
  }
}

/*
 * Opens (but does not start) a device. device_index < 0 = the backend's default device, else the
 * index in ss_list_devices order. ring_ms sizes the ring buffer. On failure returns NULL and
 * writes the ma_result to *result_out.
 */
SS_EXPORT ss_device* ss_device_open(int32_t backend, int32_t capture, int32_t device_index,
                                    int32_t sample_rate, int32_t channels, int32_t period_ms,
                                    int32_t ring_ms, int32_t* result_out) {
  ss_device* d = (ss_device*)calloc(1, sizeof(ss_device));
  if (!d) {
    *result_out = MA_OUT_OF_MEMORY;
    return NULL;
  }
  d->capture = capture;
  d->channels = channels;
  ma_result r = ss_context_init(backend, &d->ctx);
  if (r != MA_SUCCESS) {
    free(d);
    *result_out = r;
    return NULL;
  }
  ma_device_id id;
  int have_id = 0;
  if (device_index >= 0) {
    ma_device_info *play, *cap;
    ma_uint32 nplay, ncap;
    r = ma_context_get_devices(&d->ctx, &play, &nplay, &cap, &ncap);
    ma_uint32 n = capture ? ncap : nplay;
    if (r != MA_SUCCESS || (ma_uint32)device_index >= n) {
      ma_context_uninit(&d->ctx);
      free(d);
      *result_out = r != MA_SUCCESS ? r : MA_NO_DEVICE;
      return NULL;
    }
    id = (capture ? cap : play)[device_index].id;
    have_id = 1;
  }
  ma_uint32 ring_frames = (ma_uint32)((int64_t)sample_rate * ring_ms / 1000);
  if (ring_frames < 1024) ring_frames = 1024;
  r = ma_pcm_rb_init(ma_format_s16, (ma_uint32)channels, ring_frames, NULL, NULL, &d->rb);
  if (r != MA_SUCCESS) {
    ma_context_uninit(&d->ctx);
    free(d);
    *result_out = r;
    return NULL;
  }
  ma_device_config cfg = ma_device_config_init(capture ? ma_device_type_capture
                                                       : ma_device_type_playback);
  /* We give miniaudio our stream format; it converts rate / channels to the device's own. */
  if (capture) {
    cfg.capture.format = ma_format_s16;
    cfg.capture.channels = (ma_uint32)channels;
    cfg.capture.pDeviceID = have_id ? &id : NULL;
  } else {
    cfg.playback.format = ma_format_s16;
    cfg.playback.channels = (ma_uint32)channels;
    cfg.playback.pDeviceID = have_id ? &id : NULL;
  }
  cfg.sampleRate = (ma_uint32)sample_rate;
  cfg.periodSizeInMilliseconds = (ma_uint32)period_ms;
  cfg.dataCallback = ss_data_callback;
  cfg.pUserData = d;
  r = ma_device_init(&d->ctx, &cfg, &d->dev);
  if (r != MA_SUCCESS) {
    ma_pcm_rb_uninit(&d->rb);
    ma_context_uninit(&d->ctx);
    free(d);
    *result_out = r;
    return NULL;
  }
  *result_out = MA_SUCCESS;
  return d;
}

/* Starts the device (playback: the callback starts pulling from the ring). Returns ma_result. */
SS_EXPORT int32_t ss_device_start(ss_device* d) {
  ma_result r = ma_device_start(&d->dev);
  if (r == MA_SUCCESS) d->started = 1;
  return r;
}

/* Stops and frees. Stop first: uninit of a capture device that receives no data can hang. */
SS_EXPORT void ss_device_close(ss_device* d) {
  if (!d) return;
  if (d->started) ma_device_stop(&d->dev);
  ma_device_uninit(&d->dev);
  ma_pcm_rb_uninit(&d->rb);
  ma_context_uninit(&d->ctx);
  free(d);
}

/* Playback: copies up to `frames` frames into the ring; returns how many fit (never blocks). */
SS_EXPORT int32_t ss_device_write(ss_device* d, const int16_t* pcm, int32_t frames) {
  __atomic_store_n(&d->playing, 1, __ATOMIC_RELAXED);
  return (int32_t)ss_rb_transfer(&d->rb, (void*)pcm, (ma_uint32)frames, (ma_uint32)d->channels,
                                 1);
}

/* Capture: copies up to `frames` captured frames out of the ring; returns how many. */
SS_EXPORT int32_t ss_device_read(ss_device* d, int16_t* pcm, int32_t frames) {
  return (int32_t)ss_rb_transfer(&d->rb, pcm, (ma_uint32)frames, (ma_uint32)d->channels, 0);
}

/* Frames waiting in the ring (playback: not yet consumed; capture: not yet read by JS). */
SS_EXPORT int32_t ss_device_queued(ss_device* d) {
  return (int32_t)ma_pcm_rb_available_read(&d->rb);
}

/* Free space in the ring, in frames. */
SS_EXPORT int32_t ss_device_free(ss_device* d) {
  return (int32_t)ma_pcm_rb_available_write(&d->rb);
}

/* Playback: "no more data for now" — a short ring is no longer an underrun (drain / pause). */
SS_EXPORT void ss_device_idle(ss_device* d) { __atomic_store_n(&d->playing, 0, __ATOMIC_RELAXED); }

/*
 * Counters, written into out[0..4]: frames done, frames lost, underruns, first frame time (ns,
 * 0 = none yet), device sample rate (the device's native rate, for information).
 */
SS_EXPORT void ss_device_stats(ss_device* d, uint64_t* out) {
  out[0] = __atomic_load_n(&d->frames_done, __ATOMIC_ACQUIRE);
  out[1] = __atomic_load_n(&d->frames_lost, __ATOMIC_RELAXED);
  out[2] = __atomic_load_n(&d->underruns, __ATOMIC_RELAXED);
  out[3] = __atomic_load_n(&d->first_frame_ns, __ATOMIC_RELAXED);
  out[4] = d->capture ? d->dev.capture.internalSampleRate : d->dev.playback.internalSampleRate;
}

/* The backend actually in use (codes as for ss_context_init). */
SS_EXPORT int32_t ss_device_backend(ss_device* d) { return ss_backend_code(d->ctx.backend); }

/* The device's name as the backend reports it (static for the device's lifetime). */
SS_EXPORT const char* ss_device_name(ss_device* d) {
  return d->capture ? d->dev.capture.name : d->dev.playback.name;
}

/* ---------------------------------------------------------------------------------------------
 * ma_decoder for WAV and FLAC, always producing s16 at the file's own rate and channel count.
 */
typedef struct {
  ma_decoder dec;
  void* data; /* our own copy of in-memory input: JS buffers may move or be collected */
} ss_decoder;

static ss_decoder* ss_decoder_finish(ss_decoder* h, ma_result r, int32_t* info_out) {
  if (r != MA_SUCCESS) {
    free(h->data);
    free(h);
    info_out[0] = r;
    return NULL;
  }
  ma_format fmt;
  ma_uint32 ch, sr;
  ma_decoder_get_data_format(&h->dec, &fmt, &ch, &sr, NULL, 0);
  info_out[0] = MA_SUCCESS;
  info_out[1] = (int32_t)sr;
  info_out[2] = (int32_t)ch;
  return h;
}

/* Opens a decoder on a file path. info_out: [ma_result, sampleRate, channels]. */
SS_EXPORT ss_decoder* ss_decoder_open_file(const char* path, int32_t* info_out) {
  ss_decoder* h = (ss_decoder*)calloc(1, sizeof(ss_decoder));
  ma_decoder_config cfg = ma_decoder_config_init(ma_format_s16, 0, 0);
  return ss_decoder_finish(h, ma_decoder_init_file(path, &cfg, &h->dec), info_out);
}

/* Opens a decoder on a copy of `len` bytes. info_out as for ss_decoder_open_file. */
SS_EXPORT ss_decoder* ss_decoder_open_memory(const uint8_t* bytes, int64_t len, int32_t* info_out) {
  ss_decoder* h = (ss_decoder*)calloc(1, sizeof(ss_decoder));
  h->data = malloc(len > 0 ? (size_t)len : 1);
  memcpy(h->data, bytes, (size_t)len);
  ma_decoder_config cfg = ma_decoder_config_init(ma_format_s16, 0, 0);
  return ss_decoder_finish(h, ma_decoder_init_memory(h->data, (size_t)len, &cfg, &h->dec),
                           info_out);
}

/* Reads up to `frames` frames; returns frames read (0 = end), or a negative ma_result. */
SS_EXPORT int32_t ss_decoder_read(ss_decoder* h, int16_t* out, int32_t frames) {
  ma_uint64 got = 0;
  ma_result r = ma_decoder_read_pcm_frames(&h->dec, out, (ma_uint64)frames, &got);
  if (got == 0 && r != MA_SUCCESS && r != MA_AT_END) return (int32_t)r;
  return (int32_t)got;
}

/* Total length in frames if the format knows it cheaply, else 0. */
SS_EXPORT int64_t ss_decoder_length(ss_decoder* h) {
  ma_uint64 n = 0;
  if (ma_decoder_get_length_in_pcm_frames(&h->dec, &n) != MA_SUCCESS) return 0;
  return (int64_t)n;
}

SS_EXPORT void ss_decoder_close(ss_decoder* h) {
  if (!h) return;
  ma_decoder_uninit(&h->dec);
  free(h->data);
  free(h);
}

/* ---------------------------------------------------------------------------------------------
 * Low-level MP3 frame decoder. We feed it from our own byte queue in TypeScript because
 * ma_decoder over a growing buffer takes the first empty read as end of stream forever.
 */
SS_EXPORT ma_dr_mp3dec* ss_mp3_new(void) {
  ma_dr_mp3dec* dec = (ma_dr_mp3dec*)malloc(sizeof(ma_dr_mp3dec));
  if (dec) ma_dr_mp3dec_init(dec);
  return dec;
}

SS_EXPORT void ss_mp3_free(ma_dr_mp3dec* dec) { free(dec); }

/*
 * Decodes the first frame found in bytes[0..len). pcm_out must hold 1152*2 int16.
 * info_out: [frame_bytes (bytes consumed, including skipped junk), channels, hz, layer,
 * bitrate_kbps]. Returns samples per channel decoded (0 with frame_bytes > 0 = skipped data).
 */
SS_EXPORT int32_t ss_mp3_decode(ma_dr_mp3dec* dec, const uint8_t* bytes, int32_t len,
                                int16_t* pcm_out, int32_t* info_out) {
  ma_dr_mp3dec_frame_info info;
  memset(&info, 0, sizeof(info));
  int samples = ma_dr_mp3dec_decode_frame(dec, bytes, len, pcm_out, &info);
  info_out[0] = info.frame_bytes;
  info_out[1] = info.channels;
  info_out[2] = info.hz;
  info_out[3] = info.layer;
  info_out[4] = info.bitrate_kbps;
  return samples;
}

/* ---------------------------------------------------------------------------------------------
 * libopus ctl calls. lib/codec binds libopus.so.0 directly with Deno FFI, except
 * opus_encoder_ctl / opus_decoder_ctl: they are variadic, and Deno FFI has only fixed-argument
 * calls. Calling a variadic function through a fixed prototype happens to work on x86-64 SysV
 * and Linux arm64 but is undefined behaviour (and wrong on Apple arm64), so the C compiler makes
 * the variadic call here. We dlopen the same libopus.so.0 (the loader returns the one instance
 * Deno opened, so encoder / decoder pointers are shared) and need no libopus headers to build:
 * the request codes are libopus's stable ABI values (opus_defines.h), passed through from JS.
 *
 * kind: 0 = OpusEncoder*, 1 = OpusDecoder*. Returns the libopus result (OPUS_OK = 0, < 0 error)
 * or SS_OPUS_UNAVAILABLE when libopus.so.0 or the symbol cannot be loaded.
 */
#define SS_OPUS_UNAVAILABLE (-1000)
typedef int (*ss_opus_ctl_fn)(void* st, int request, ...);

static ss_opus_ctl_fn ss_opus_ctl_fns[2];
static pthread_once_t ss_opus_once = PTHREAD_ONCE_INIT;

/* Runs once per process (workers may race): the handle stays open for the process's life.
 * SOUNDSOCK_LIBOPUS names the same library lib/codec/ffi.ts opened, so the ctl calls reach the
 * libopus that made the encoder / decoder. */
static void ss_opus_load(void) {
  const char* path = getenv("SOUNDSOCK_LIBOPUS");
  void* h = dlopen(path && *path ? path : "libopus.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  ss_opus_ctl_fns[0] = (ss_opus_ctl_fn)dlsym(h, "opus_encoder_ctl");
  ss_opus_ctl_fns[1] = (ss_opus_ctl_fn)dlsym(h, "opus_decoder_ctl");
}

static ss_opus_ctl_fn ss_opus_ctl_lookup(int32_t kind) {
  pthread_once(&ss_opus_once, ss_opus_load);
  return kind == 0 || kind == 1 ? ss_opus_ctl_fns[kind] : NULL;
}

/* A setter (OPUS_SET_*, and OPUS_RESET_STATE, which ignores the value): opus_*_ctl(st, req, v). */
SS_EXPORT int32_t ss_opus_ctl_set(int32_t kind, void* st, int32_t request, int32_t value) {
  ss_opus_ctl_fn fn = ss_opus_ctl_lookup(kind);
  if (!fn || !st) return SS_OPUS_UNAVAILABLE;
  return (int32_t)fn(st, (int)request, (int32_t)value);
}

/* A getter (OPUS_GET_*): opus_*_ctl(st, req, &out). */
SS_EXPORT int32_t ss_opus_ctl_get(int32_t kind, void* st, int32_t request, int32_t* out) {
  ss_opus_ctl_fn fn = ss_opus_ctl_lookup(kind);
  if (!fn || !st) return SS_OPUS_UNAVAILABLE;
  return (int32_t)fn(st, (int)request, out);
}
