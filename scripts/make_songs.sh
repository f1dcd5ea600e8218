#!/usr/bin/env bash
# make_songs.sh — synthesize soundsock's demo songs into songs/.
#
# Everything here is ORIGINAL music, generated from scratch with SoX's `synth`
# effect (pluck, sine, square, triangle, noise); nothing is sampled or downloaded.
# The results are dedicated to the public domain (CC0 1.0), see songs/README.md.
#
# Usage:   bash scripts/make_songs.sh
# Needs:   sox, lame, flac (Debian packages of the same names); ffprobe is optional
#          and only used for the summary printed at the end.
#
# Output (sorted by track number, which is also the playlist order):
#   01-morning-arpeggio.mp3   44.1 kHz stereo, CBR  80 kbit/s
#   02-lantern-waltz.mp3      44.1 kHz stereo, VBR  -V 7
#   03-tin-drum-groove.mp3    48   kHz stereo, CBR  80 kbit/s
#   04-nocturne.mp3           44.1 kHz stereo, VBR  -V 7, ID3v2 only (no ID3v1)
#   (the other MP3s carry an ID3v2 tag at the start AND an ID3v1 tag at the end)
#   05-square-lullaby.wav     22.05 kHz mono, 16-bit PCM
#   06-harbour-chorale.flac   44.1 kHz stereo, 16-bit
#
# How it works: every melodic line is written as a list of tokens ("C4:2" =
# note C4 lasting 2 steps, "C4+E4+G4:4" = chord, "R:1" = rest).  Each token is
# rendered to its own small WAV with `sox -n ... synth`, the notes of a line are
# concatenated, the lines are panned to stereo and mixed with `sox -m`, and the
# mix gets a little reverb, a fade-out and a peak normalisation to -1.5 dBFS.
#
# Repeatability: every sox call uses -R (fixed random seed for noise/pluck) and
# -D (no dither), so the intermediate and final WAV/FLAC files are identical on
# every run with the same tool versions; lame and flac are deterministic too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/songs"
YEAR=2026
ARTIST="soundsock"
ALBUM="soundsock demo songs"
TRACKS=6
LICENSE="CC0 1.0 public domain dedication, synthesized by soundsock"

for tool in sox lame flac; do
  command -v "$tool" >/dev/null || { echo "make_songs: '$tool' not found" >&2; exit 1; }
done

TMP="$(mktemp -d)"
# Set KEEP_TMP=1 to keep the intermediate WAVs for inspection.
trap '[[ -n "${KEEP_TMP:-}" ]] && echo "make_songs: kept $TMP" >&2 || rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

# sox with repeatable seed, no dither, errors only.
SOX=(sox -R -D -V1)
RATE=44100 # sample rate of the piece currently being rendered
SEQ=0      # counter for unique temp file names
TMPF=""    # last path from tmpfile()

# calc EXPR — float arithmetic via awk, printed with 6 decimals.
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# tmpfile — set TMPF to a fresh temp WAV path (a global, not printed: a $(...)
# subshell would lose the counter update).
tmpfile() { SEQ=$((SEQ + 1)); printf -v TMPF '%s/t%05d.wav' "$TMP" "$SEQ"; }

# silence OUT SECONDS — mono silence at $RATE.
silence() { "${SOX[@]}" -n -r "$RATE" -c 1 "$1" trim 0 "$2"; }

# semis NOTE — semitones of a note name (C4, F#3, Bb5) relative to A4 = 440 Hz.
semis() {
  local n="$1" letter acc oct base
  letter="${n:0:1}"
  acc="${n:1:1}"
  case "$letter" in
    C) base=-9 ;; D) base=-7 ;; E) base=-5 ;; F) base=-4 ;; G) base=-2 ;; A) base=0 ;; B) base=2 ;;
    *) echo "bad note: $n" >&2; return 1 ;;
  esac
  if [[ "$acc" == "#" ]]; then base=$((base + 1)); oct="${n:2}";
  elif [[ "$acc" == "b" ]]; then base=$((base - 1)); oct="${n:2}";
  else oct="${n:1}"; fi
  echo $(((oct - 4) * 12 + base))
}

# note OUT TYPE DUR VOL ATTACK RELEASE NOTES — render one note or chord (NOTES
# joined by '+') as a mono WAV of exactly DUR seconds.  TYPE is a sox synth
# waveform, or "bell": a sine with octave and twelfth partials and a (1-t)^3 decay.
note() {
  local out="$1" type="$2" dur="$3" vol="$4" att="$5" rel="$6" notes="$7"
  local -a parts spec
  local n s
  IFS='+' read -r -a parts <<<"$notes"
  # Clamp the envelope so attack + release always fit in the note.
  att="$(calc "($att < $dur / 2) ? $att : $dur / 2")"
  rel="$(calc "($rel < $dur - $att) ? $rel : $dur - $att")"
  if [[ "$type" == bell ]]; then
    s="$(semis "${parts[0]}")"
    "${SOX[@]}" -r "$RATE" -c 3 -n -c 1 "$out" \
      synth "$dur" sine "%$s" sine "%$((s + 12))" sine "%$((s + 19))" \
      remix 1v0.62,2v0.25,3v0.13 \
      fade t 0.004 "$dur" "$(calc "$dur - 0.004")" fade t 0 "$dur" "$dur" fade t 0 "$dur" "$dur" \
      vol "$vol"
    return
  fi
  spec=()
  for n in "${parts[@]}"; do spec+=("$type" "$n"); done
  "${SOX[@]}" -r "$RATE" -c "${#parts[@]}" -n -c 1 "$out" \
    synth "$dur" "${spec[@]}" remix - fade h "$att" "$dur" "$rel" vol "$vol"
}

# line OUT STEP TYPE VOL ATTACK RELEASE TOKENS... — render a melodic line.
# Tokens are NOTE[:STEPS], NOTE+NOTE[:STEPS] (chord) or R[:STEPS] (rest);
# STEP is the length of one step in seconds.
line() {
  local out="$1" step="$2" type="$3" vol="$4" att="$5" rel="$6"
  shift 6
  local -a files=()
  local tok name len dur f
  for tok in $*; do
    name="${tok%%:*}"
    len=1
    [[ "$tok" == *:* ]] && len="${tok##*:}"
    dur="$(calc "$len * $step")"
    tmpfile; f="$TMPF"
    if [[ "$name" == R ]]; then silence "$f" "$dur"; else note "$f" "$type" "$dur" "$vol" "$att" "$rel" "$name"; fi
    files+=("$f")
  done
  "${SOX[@]}" "${files[@]}" "$out"
}

# hit OUT VOICE LEN — one drum hit made from noise bursts / swept sines.
hit() {
  local out="$1" voice="$2" len="$3"
  case "$voice" in
    kick) # sine swept down from 150 to 42 Hz, fast decay
      "${SOX[@]}" -n -r "$RATE" -c 1 "$out" synth "$len" sine 150/42 \
        fade t 0.002 "$len" "$(calc "$len - 0.002")" fade t 0 "$len" "$len" vol 0.9 ;;
    snare) # high-passed noise burst plus a short 190 Hz body
      "${SOX[@]}" -r "$RATE" -c 2 -n -c 1 "$out" synth "$len" noise sine 190 \
        remix 1v0.55,2v0.3 highpass 160 \
        fade t 0.001 "$len" "$(calc "$len - 0.001")" fade t 0 "$len" "$len" vol 0.8 ;;
    hat) # very short, bright noise tick
      "${SOX[@]}" -n -r "$RATE" -c 1 "$out" synth "$len" noise highpass 7000 \
        fade t 0.001 "$len" "$(calc "$len - 0.001")" vol 0.35 ;;
    *) echo "bad drum voice: $voice" >&2; return 1 ;;
  esac
}

# drums OUT STEP VOICE PATTERN... — one drum voice on a step grid: 'x' = hit,
# '.' = rest.  A hit rings until the next hit (capped per voice).
drums() {
  local out="$1" step="$2" voice="$3"
  shift 3
  local -a toks files=()
  read -r -a toks <<<"$*"
  local i=0 run len cap hlen f
  case "$voice" in kick) cap=0.28 ;; snare) cap=0.18 ;; *) cap=0.05 ;; esac
  while ((i < ${#toks[@]})); do
    run=1
    while ((i + run < ${#toks[@]})) && [[ "${toks[i + run]}" == . ]]; do run=$((run + 1)); done
    len="$(calc "$run * $step")"
    tmpfile; f="$TMPF"
    if [[ "${toks[i]}" == x ]]; then
      hlen="$(calc "($cap < $len) ? $cap : $len")"
      hit "$f.hit.wav" "$voice" "$hlen"
      "${SOX[@]}" "$f.hit.wav" "$f" pad 0 "$(calc "$len - $hlen")"
    else
      silence "$f" "$len"
    fi
    files+=("$f")
    i=$((i + run))
  done
  "${SOX[@]}" "${files[@]}" "$out"
}

# pan IN OUT LEFT RIGHT — mono line to stereo with the given channel gains.
pan() { "${SOX[@]}" "$1" -c 2 "$2" remix "1v$3" "1v$4"; }

# master OUT TAIL FADE REVERB_ARGS... [EFFECTS...] -- LAYERS... — mix stereo
# layers (given as "-v GAIN file" after the literal "--"), add TAIL seconds of
# room for the reverb, apply `reverb REVERB_ARGS` (plus any further sox effects
# listed after them), fade the last FADE seconds, peak-normalise to -1.5 dBFS.
master() {
  local out="$1" tail="$2" fade="$3"
  shift 3
  local -a rev=()
  while [[ "$1" != -- ]]; do rev+=("$1"); shift; done
  shift
  local mix
  tmpfile; mix="$TMPF"
  "${SOX[@]}" -m "$@" "$mix"
  "${SOX[@]}" "$mix" -b 16 "$out" pad 0 "$tail" reverb "${rev[@]}" \
    highpass 25 fade q 0.01 -0 "$fade" norm -1.5
}

# tag_mp3 IN OUT TRACK TITLE LAME_OPTS... — encode with lame incl. ID3 tags.
# lame's Xing/Info ("LAME") header frame is written by default and kept.
tag_mp3() {
  local in="$1" out="$2" track="$3" title="$4"
  shift 4
  local khz pre="$in.mp3in.wav"
  khz="$(awk "BEGIN { printf \"%g\", $(soxi -r "$in") / 1000 }")" # 44.1 or 48
  # 3 dB extra headroom: the lossy encoder's low-pass makes sharp pluck/square
  # transients overshoot by ~1.5 dB, and decoded peaks must stay below 0.99.
  "${SOX[@]}" "$in" "$pre" gain -3
  # --resample pins the output rate: at low bitrates lame would drop to 32 kHz.
  lame --quiet --resample "$khz" "$@" --add-id3v2 --tt "$title" --ta "$ARTIST" --tl "$ALBUM" \
    --ty "$YEAR" --tn "$track/$TRACKS" --tv "TCOP=$LICENSE" "$pre" "$out"
}

# ---------------------------------------------------------------------------
# 01 Morning Arpeggio — C major, I-vi-IV-V.  Plucked sixteenth-note arpeggios
# over a triangle bass and a soft sine pad; a triangle melody joins the
# second time round.  Step = one sixteenth = 0.15 s (100 BPM).
# ---------------------------------------------------------------------------
morning_arpeggio() {
  RATE=44100
  local s=0.15 d="$TMP/p1"
  mkdir -p "$d"
  local C="C4 E4 G4 C5 E5 C5 G4 E4" Am="A3 C4 E4 A4 C5 A4 E4 C4"
  local F="F3 A3 C4 F4 A4 F4 C4 A3" G="G3 B3 D4 G4 B4 G4 D4 B3"
  local arp="$C $C $Am $Am $F $F $G $G"
  line "$d/arp.wav" "$s" pluck 0.8 0.003 0.05 "$arp $arp C4 E4 G4 C5 E5:12"
  local bass="C2:8 G2:8 A1:8 E2:8 F1:8 C2:8 G1:8 D2:8"
  line "$d/bass.wav" "$s" triangle 0.7 0.01 0.12 "$bass $bass C2:16"
  local pad="C4+E4+G4:16 A3+C4+E4:16 F3+A3+C4:16 G3+B3+D4:16"
  line "$d/pad.wav" "$s" sine 0.6 0.4 0.6 "$pad $pad C4+E4+G4:16"
  line "$d/mel.wav" "$s" triangle 0.6 0.02 0.08 "R:64 \
    G5:4 E5:2 G5:2 C6:6 B5:2  A5:4 E5:4 C5:6 D5:2 \
    C5:4 F5:2 A5:2 G5:4 F5:4  D5:4 G5:2 F5:2 E5:4 D5:4  C5:16"
  pan "$d/arp.wav" "$d/arp2.wav" 0.55 0.85
  pan "$d/bass.wav" "$d/bass2.wav" 0.8 0.8
  pan "$d/pad.wav" "$d/pad2.wav" 0.7 0.6
  pan "$d/mel.wav" "$d/mel2.wav" 0.8 0.5
  master "$d/master.wav" 1.8 2.5 40 50 70 80 10 -6 -- \
    -v 1.0 "$d/arp2.wav" -v 1.0 "$d/bass2.wav" -v 0.35 "$d/pad2.wav" -v 0.55 "$d/mel2.wav"
  tag_mp3 "$d/master.wav" "$OUT/01-morning-arpeggio.mp3" 1 "Morning Arpeggio" -b 80 --cbr
}

# ---------------------------------------------------------------------------
# 02 Lantern Waltz — G major, 3/4.  Plucked "oom-pah-pah" (bass root, then two
# chord strums) under a soft triangle melody.  Step = one beat = 0.42 s.
# ---------------------------------------------------------------------------
lantern_waltz() {
  RATE=44100
  local s=0.42 d="$TMP/p2"
  mkdir -p "$d"
  local -A root=([G]=G2 [C]=C3 [Em]=E2 [D]=D2) chord=([G]=G3+B3+D4 [C]=G3+C4+E4 [Em]=G3+B3+E4 [D]=F#3+A3+D4)
  local prog="G G C G Em C D D G G C G C D G G" b oom="" pah=""
  for b in $prog; do
    oom+="${root[$b]}:3 "
    pah+="R:1 ${chord[$b]}:1 ${chord[$b]}:1 "
  done
  line "$d/oom.wav" "$s" pluck 0.9 0.003 0.1 "$oom"
  line "$d/pah.wav" "$s" pluck 0.9 0.003 0.06 "$pah"
  line "$d/mel.wav" "$s" triangle 0.6 0.06 0.12 "\
    B4:2 D5:1  G5:2 F#5:1  E5:2 G5:1  D5:3 \
    B4:2 E5:1  G5:2 E5:1   F#5:2 E5:1 D5:1 E5:1 F#5:1 \
    G5:2 D5:1  B4:2 D5:1   E5:2 C5:1  B4:3 \
    C5:1 E5:1 G5:1  F#5:2 A5:1  G5:6"
  pan "$d/oom.wav" "$d/oom2.wav" 0.8 0.8
  pan "$d/pah.wav" "$d/pah2.wav" 0.45 0.8
  pan "$d/mel.wav" "$d/mel2.wav" 0.8 0.55
  master "$d/master.wav" 1.6 2.0 45 40 70 70 12 -5 -- \
    -v 1.0 "$d/oom2.wav" -v 0.55 "$d/pah2.wav" -v 0.6 "$d/mel2.wav"
  tag_mp3 "$d/master.wav" "$OUT/02-lantern-waltz.mp3" 2 "Lantern Waltz" -V 7
}

# ---------------------------------------------------------------------------
# 03 Tin Drum Groove — A minor at 120 BPM, rendered at 48 kHz.  Noise-burst
# hats and snare, a swept-sine kick, a low-passed square bass riff and a
# plucked lead.  Step = one sixteenth = 0.125 s.
# ---------------------------------------------------------------------------
tin_drum_groove() {
  RATE=48000
  local s=0.125 d="$TMP/p3"
  mkdir -p "$d"
  local k="x . . . . . . . x . x . . . . ." sn=". . . . x . . . . . . . x . . ." h="x . x . x . x . x . x . x . x x"
  local fill=". . . . x . . . x . x . x x x x" i kk="" ss="" hh=""
  for i in 1 2 3 4 5 6 7; do kk+="$k "; ss+="$sn "; hh+="$h "; done
  kk+="$k x . . . . . . . . . . . . . . ."
  ss+="$fill . . . . . . . . . . . . . . . ."
  hh+="$h x . . . . . . . . . . . . . . ."
  drums "$d/kick.wav" "$s" kick "$kk"
  drums "$d/snare.wav" "$s" snare "$ss"
  drums "$d/hat.wav" "$s" hat "$hh"
  local Am="A2:3 A2:1 R:2 A3:2 A2:2 G2:2 R:2 C3:2"
  local F="F2:3 F2:1 R:2 F3:2 F2:2 E2:2 R:2 A2:2"
  local G="G2:3 G2:1 R:2 G3:2 G2:2 F2:2 R:2 B2:2"
  line "$d/bass.raw.wav" "$s" square 0.5 0.004 0.04 "$Am $Am $F $G $Am $Am $F $G A2:16"
  "${SOX[@]}" "$d/bass.raw.wav" "$d/bass.wav" lowpass 900 lowpass 900
  line "$d/lead.wav" "$s" pluck 0.8 0.003 0.05 "R:32 \
    A4:2 C5:2 F5:4 E5:4 C5:4   B4:2 D5:2 G5:4 F5:2 E5:2 D5:4 \
    E5:2 A5:2 C6:2 A5:2 G5:2 E5:2 D5:2 E5:2   A4:4 C5:2 D5:2 E5:6 R:2 \
    F5:2 A5:2 C6:2 A5:2 G5:2 F5:2 E5:2 C5:2   D5:4 G5:2 B4:2 D5:6 R:2  A4:16"
  pan "$d/kick.wav" "$d/kick2.wav" 0.9 0.9
  pan "$d/snare.wav" "$d/snare2.wav" 0.6 0.7
  pan "$d/hat.wav" "$d/hat2.wav" 0.7 0.45
  pan "$d/bass.wav" "$d/bass2.wav" 0.85 0.85
  pan "$d/lead.wav" "$d/lead2.wav" 0.5 0.8
  master "$d/master.wav" 1.0 1.5 20 50 40 60 0 -8 -- \
    -v 1.0 "$d/kick2.wav" -v 0.7 "$d/snare2.wav" -v 0.6 "$d/hat2.wav" \
    -v 0.9 "$d/bass2.wav" -v 0.8 "$d/lead2.wav"
  tag_mp3 "$d/master.wav" "$OUT/03-tin-drum-groove.mp3" 3 "Tin Drum Groove" -b 80 --cbr
}

# ---------------------------------------------------------------------------
# 04 Nocturne — slow D major pentatonic bells over a quiet sine pad, with a
# generous reverb.  Step = 0.45 s.  Encoded with an ID3v2 tag only.
# ---------------------------------------------------------------------------
nocturne() {
  RATE=44100
  local s=0.45 d="$TMP/p4"
  mkdir -p "$d"
  line "$d/bells.wav" "$s" bell 0.9 0 0 "\
    F#5:2 A5:2 B5:1 A5:1 F#5:2   D5:2 F#5:2 E5:4 \
    B4:2 D5:2 E5:2 D5:2          E5:2 A5:2 F#5:2 E5:2   D5:8"
  line "$d/pad.wav" "$s" sine 0.7 1.2 1.5 \
    "D3+A3+F#4:8 B2+F#3+D4:8 G2+D3+B3:8 A2+E3+C#4:8 D3+A3+F#4:8"
  pan "$d/bells.wav" "$d/bells2.wav" 0.75 0.65
  pan "$d/pad.wav" "$d/pad2.wav" 0.6 0.7
  master "$d/master.wav" 2.5 3.0 70 40 90 100 20 -3 -- \
    -v 1.0 "$d/bells2.wav" -v 0.45 "$d/pad2.wav"
  tag_mp3 "$d/master.wav" "$OUT/04-nocturne.mp3" 4 "Nocturne" -V 7 --id3v2-only
}

# ---------------------------------------------------------------------------
# 05 Square Lullaby — F major chiptune: a gentle low-passed square melody over
# a triangle bass, written straight to 22.05 kHz mono 16-bit WAV.
# Step = one eighth = 0.3 s.
# ---------------------------------------------------------------------------
square_lullaby() {
  RATE=22050
  local s=0.3 d="$TMP/p5"
  mkdir -p "$d"
  line "$d/mel.raw.wav" "$s" square 0.35 0.01 0.08 "\
    A4:2 C5:2 A4:2 F4:2   G4:2 A4:1 Bb4:1 C5:4 \
    D5:2 C5:2 Bb4:2 A4:2  G4:2 E4:2 F4:8"
  "${SOX[@]}" "$d/mel.raw.wav" "$d/mel.wav" lowpass 2500
  line "$d/bass.wav" "$s" triangle 0.7 0.02 0.15 \
    "F2:4 C3:4 C2:4 C3:4 Bb2:4 F2:4 C3:4 F2:4 F2:4"
  # mono mix: equal channels in, master() works in stereo, fold down afterwards
  pan "$d/mel.wav" "$d/mel2.wav" 1 1
  pan "$d/bass.wav" "$d/bass2.wav" 1 1
  master "$d/master.wav" 0.6 1.2 30 60 40 0 0 -8 -- -v 0.8 "$d/mel2.wav" -v 1.0 "$d/bass2.wav"
  "${SOX[@]}" "$d/master.wav" -b 16 -e signed-integer -c 1 "$OUT/05-square-lullaby.wav" remix -
}

# ---------------------------------------------------------------------------
# 06 Harbour Chorale — F major, four-voice hymn-like chorale: a mellow
# (low-passed triangle) soprano over sine alto, tenor and bass, slightly spread.
# Step = 0.75 s.  FLAC with Vorbis comments (TITLE, ARTIST, ...).  Sines keep
# the lossless file small (~0.55 MB); brighter waveforms doubled it.
# ---------------------------------------------------------------------------
harbour_chorale() {
  RATE=44100
  local s=0.75 d="$TMP/p6"
  mkdir -p "$d"
  line "$d/sop.raw.wav" "$s" triangle 0.5 0.08 0.15 \
    "A4 G4 F4 F4 A4 Bb4 C5 Bb4 A4 C5 D5 C5 Bb4 G4 F4:2"
  "${SOX[@]}" "$d/sop.raw.wav" "$d/sop.wav" lowpass 1200
  line "$d/alt.wav" "$s" sine 0.6 0.08 0.15 \
    "F4 E4 D4 D4 F4 G4 G4 G4 F4 E4 F4 F4 F4 E4 C4:2"
  line "$d/ten.wav" "$s" sine 0.6 0.08 0.15 \
    "C4 C4 A3 Bb3 C4 D4 E4 E4 C4 A3 Bb3 A3 D4 C4 A3:2"
  line "$d/bas.wav" "$s" sine 0.6 0.08 0.15 \
    "F3 E3 D3 Bb2 F2 G2 C3 C3 F3 A2 Bb2 A2 Bb2 C3 F2:2"
  pan "$d/sop.wav" "$d/sop2.wav" 0.85 0.7
  pan "$d/alt.wav" "$d/alt2.wav" 0.65 0.85
  pan "$d/ten.wav" "$d/ten2.wav" 0.85 0.65
  pan "$d/bas.wav" "$d/bas2.wav" 0.8 0.8
  master "$d/master.wav" 1.5 2.0 40 50 60 50 15 -8 lowpass 3000 -- \
    -v 1.0 "$d/sop2.wav" -v 0.7 "$d/alt2.wav" -v 0.7 "$d/ten2.wav" -v 0.9 "$d/bas2.wav"
  flac --silent --force --best --padding=4096 \
    -T "TITLE=Harbour Chorale" -T "ARTIST=$ARTIST" -T "ALBUM=$ALBUM" -T "DATE=$YEAR" \
    -T "TRACKNUMBER=6" -T "TRACKTOTAL=$TRACKS" -T "LICENSE=$LICENSE" \
    -o "$OUT/06-harbour-chorale.flac" "$d/master.wav"
}

morning_arpeggio
lantern_waltz
tin_drum_groove
nocturne
square_lullaby
harbour_chorale

# Summary: format facts per file and the total size.
cd "$OUT"
for f in 0*.mp3 0*.wav 0*.flac; do
  if command -v ffprobe >/dev/null; then
    printf '%-26s %s\n' "$f" "$(ffprobe -v error -show_entries stream=codec_name,sample_rate,channels:format=duration \
      -of default=nw=1:nk=1 "$f" | paste -sd' ')"
  else
    printf '%s\n' "$f"
  fi
done
du -cb 0*.mp3 0*.wav 0*.flac | tail -1
