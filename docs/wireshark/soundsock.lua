-- soundsock.lua — Wireshark / tshark dissector for the soundsock/2 frame (docs/PROTOCOL.md).
--
-- Install: copy to ~/.local/lib/wireshark/plugins/ (Wireshark >= 2.6, or
-- ~/.config/wireshark/plugins/ on older versions), or load it for one run:
--   tshark -X lua_script:docs/wireshark/soundsock.lua -r capture.pcapng
-- See docs/wireshark/README.md for display filters and a walkthrough.
--
-- What it does:
--   * decodes the 32-byte header (big-endian): magic "SK", version, type, flags, reserved,
--     stream id, sequence, timestamp (microseconds, 64-bit), payload length, CRC-32C;
--   * recomputes the CRC-32C (Castagnoli) over header bytes 0..27 + payload and marks the frame
--     good or bad (soundsock.crc.status), with expert info for a bad CRC or a bad length;
--   * shows JSON control payloads as text (soundsock.json) and, by default, as a JSON tree;
--   * notes gaps in DATA sequence numbers (soundsock.seq.lost) per stream and direction;
--   * registers on UDP port 9000 and TCP port 8443 (plaintext captures only: TLS traffic is
--     encrypted and is left to the TLS dissector) and as a UDP heuristic dissector, so captures
--     on any UDP port are recognised (magic 0x534b, version 2, datagram length = 32 + length).
--
-- Works with the Lua 5.2 (bit32) and Lua 5.3/5.4 builds of Wireshark 3.x / 4.x.

local HEADER_SIZE = 32
local MAGIC = 0x534b
local VERSION = 2
local UDP_MAX_PAYLOAD = 1200
local STREAM_MAX_PAYLOAD = 1024 * 1024 - HEADER_SIZE
local DEFAULT_UDP_PORT = 9000
local DEFAULT_TCP_PORT = 8443

-- Message types, as in lib/wire/frame.ts (FrameType).
local TYPE_NAMES = {
  [0x01] = "REQUEST",
  [0x02] = "ACCEPT",
  [0x03] = "REJECT",
  [0x04] = "STREAM_INFO",
  [0x05] = "DATA",
  [0x06] = "END",
  [0x07] = "ERROR",
  [0x08] = "HEARTBEAT",
  [0x09] = "BYE",
  [0x0a] = "SONG_LIST",
  [0x0b] = "PLAY_RESULT",
  [0x0c] = "QUEUE",
  [0x0d] = "NOW_PLAYING",
  [0x0e] = "CHALLENGE",
}
local TYPE_DATA = 0x05
local FLAG_SONG_START = 0x0001

---------------------------------------------------------------------------------------------
-- CRC-32C (reflected polynomial 0x82F63B78, init and final XOR 0xFFFFFFFF), table driven.
-- Wireshark 4.x ships Lua 5.2 (with the bit32 library) or 5.4 (native bit operators, and
-- usually no bit32). Use bit32 when present; otherwise compile the native-operator version at
-- load time so that this file still parses under Lua 5.2.
---------------------------------------------------------------------------------------------
local crc32c_update -- function(crc_state, lua_string) -> crc_state (not final-XORed)

if bit32 then
  local band, bxor, rshift = bit32.band, bit32.bxor, bit32.rshift
  local T = {}
  for n = 0, 255 do
    local c = n
    for _ = 1, 8 do
      if band(c, 1) == 1 then c = bxor(rshift(c, 1), 0x82F63B78) else c = rshift(c, 1) end
    end
    T[n] = c
  end
  crc32c_update = function(crc, s)
    local byte = string.byte
    for i = 1, #s do
      crc = bxor(T[band(bxor(crc, byte(s, i)), 0xff)], rshift(crc, 8))
    end
    return crc
  end
else
  crc32c_update = load([[
    local T = {}
    for n = 0, 255 do
      local c = n
      for _ = 1, 8 do
        if c & 1 == 1 then c = (c >> 1) ~ 0x82F63B78 else c = c >> 1 end
      end
      T[n] = c
    end
    return function(crc, s)
      local byte = string.byte
      for i = 1, #s do
        crc = T[(crc ~ byte(s, i)) & 0xff] ~ (crc >> 8)
      end
      return crc & 0xffffffff
    end
  ]])()
end

local function crc32c_final(crc)
  if bit32 then return bit32.bxor(crc, 0xffffffff) end
  return 0xffffffff - crc -- same as crc ~ 0xffffffff for a 32-bit value
end

-- Self-check against the RFC 3720 check value when the script loads.
assert(crc32c_final(crc32c_update(0xffffffff, "123456789")) == 0xE3069283,
  "soundsock.lua: CRC-32C self-test failed")

---------------------------------------------------------------------------------------------
-- Protocol, fields, expert info
---------------------------------------------------------------------------------------------
local soundsock = Proto("soundsock", "soundsock/2 networked audio protocol")

local f = {
  magic = ProtoField.uint16("soundsock.magic", "Magic", base.HEX),
  version = ProtoField.uint8("soundsock.version", "Version", base.DEC),
  type = ProtoField.uint8("soundsock.type", "Type", base.HEX, TYPE_NAMES),
  flags = ProtoField.uint16("soundsock.flags", "Flags", base.HEX),
  song_start = ProtoField.bool("soundsock.flags.song_start", "SONG_START", 16,
    { "Set: first DATA frame of a new song", "Not set" }, FLAG_SONG_START),
  unknown_flags = ProtoField.uint16("soundsock.flags.unknown", "Unknown flag bits", base.HEX,
    nil, 0xfffe),
  reserved = ProtoField.uint16("soundsock.reserved", "Reserved", base.HEX),
  stream_id = ProtoField.uint32("soundsock.stream_id", "Stream id", base.HEX),
  seq = ProtoField.uint32("soundsock.seq", "Sequence", base.DEC),
  lost = ProtoField.uint32("soundsock.seq.lost", "DATA frames missing before this one",
    base.DEC),
  timestamp_us = ProtoField.uint64("soundsock.timestamp_us", "Timestamp (µs)", base.DEC),
  timestamp_s = ProtoField.double("soundsock.timestamp", "Timestamp (s)"),
  length = ProtoField.uint32("soundsock.length", "Payload length", base.DEC),
  crc = ProtoField.uint32("soundsock.crc", "CRC-32C", base.HEX),
  crc_calc = ProtoField.uint32("soundsock.crc.calculated", "Calculated CRC-32C", base.HEX),
  crc_status = ProtoField.string("soundsock.crc.status", "CRC-32C status"),
  json = ProtoField.string("soundsock.json", "JSON payload"),
  payload = ProtoField.bytes("soundsock.payload", "Payload"),
}
soundsock.fields = {
  f.magic, f.version, f.type, f.flags, f.song_start, f.unknown_flags, f.reserved,
  f.stream_id, f.seq, f.lost, f.timestamp_us, f.timestamp_s, f.length, f.crc, f.crc_calc,
  f.crc_status, f.json, f.payload,
}

local e = {
  bad_crc = ProtoExpert.new("soundsock.crc.bad", "Bad CRC-32C", expert.group.CHECKSUM,
    expert.severity.ERROR),
  bad_length = ProtoExpert.new("soundsock.length.bad", "Bad payload length",
    expert.group.MALFORMED, expert.severity.ERROR),
  too_large = ProtoExpert.new("soundsock.length.too_large",
    "Payload longer than the transport allows", expert.group.PROTOCOL, expert.severity.WARN),
  bad_version = ProtoExpert.new("soundsock.version.bad", "Unsupported version",
    expert.group.PROTOCOL, expert.severity.ERROR),
  bad_type = ProtoExpert.new("soundsock.type.bad", "Unknown message type",
    expert.group.PROTOCOL, expert.severity.ERROR),
  bad_reserved = ProtoExpert.new("soundsock.reserved.bad", "Reserved bytes are not zero",
    expert.group.PROTOCOL, expert.severity.ERROR),
  song_start = ProtoExpert.new("soundsock.song_start", "New song starts (SONG_START)",
    expert.group.SEQUENCE, expert.severity.CHAT),
  seq_gap = ProtoExpert.new("soundsock.seq.gap", "DATA sequence gap (frames lost or reordered)",
    expert.group.SEQUENCE, expert.severity.WARN),
}
soundsock.experts = {
  e.bad_crc, e.bad_length, e.too_large, e.bad_version, e.bad_type, e.bad_reserved,
  e.song_start, e.seq_gap,
}

soundsock.prefs.udp_port = Pref.uint("UDP port", DEFAULT_UDP_PORT,
  "UDP port always decoded as soundsock (other ports are found by the heuristic)")
soundsock.prefs.tcp_port = Pref.uint("TCP port", DEFAULT_TCP_PORT,
  "TCP port decoded as soundsock (plaintext captures only; TLS is encrypted)")
soundsock.prefs.json_tree = Pref.bool("Show JSON payloads as a tree", true,
  "Also hand control payloads to Wireshark's JSON dissector")
soundsock.prefs.info_json_max = Pref.uint("Longest JSON shown in Info", 200,
  "Characters of a control payload shown in the Info column")

local json_dissector = Dissector.get("json")

---------------------------------------------------------------------------------------------
-- Sequence tracking: last DATA sequence per (stream id, destination), first pass only.
---------------------------------------------------------------------------------------------
local last_seq = {}  -- key -> last sequence seen
local lost_at = {}   -- packet number .. ":" .. offset -> missing count (computed on first pass)

function soundsock.init()
  last_seq = {}
  lost_at = {}
end

local function track_sequence(pinfo, offset, stream_id, seq)
  local at = pinfo.number .. ":" .. offset
  if not pinfo.visited then
    local key = string.format("%08x>%s:%d", stream_id, tostring(pinfo.dst), pinfo.dst_port)
    local prev = last_seq[key]
    if prev ~= nil then
      local expected = (prev + 1) % 4294967296
      if seq ~= expected then
        lost_at[at] = (seq - expected) % 4294967296
      end
    end
    last_seq[key] = seq
  end
  return lost_at[at]
end

---------------------------------------------------------------------------------------------
-- One frame. `tvb` starts at the frame; `avail` bytes of it belong to this frame (UDP: the
-- whole datagram; TCP: exactly one PDU). Returns the number of bytes consumed.
---------------------------------------------------------------------------------------------
local function dissect_frame(tvb, pinfo, root, transport)
  local avail = tvb:reported_length_remaining()
  local plen = tvb(24, 4):uint()
  local frame_len = HEADER_SIZE + plen
  local ftype = tvb(3, 1):uint()
  local flags = tvb(4, 2):uint()
  local stream_id = tvb(8, 4):uint()
  local seq = tvb(12, 4):uint()
  local ts = tvb(16, 8):uint64()
  local name = TYPE_NAMES[ftype] or string.format("0x%02x", ftype)

  local covered = math.min(avail, frame_len)
  local tree = root:add(soundsock, tvb(0, covered))
  tree:append_text(string.format(", %s", name))

  tree:add(f.magic, tvb(0, 2))
  local vitem = tree:add(f.version, tvb(2, 1))
  if tvb(2, 1):uint() ~= VERSION then vitem:add_proto_expert_info(e.bad_version) end
  local titem = tree:add(f.type, tvb(3, 1))
  if TYPE_NAMES[ftype] == nil then titem:add_proto_expert_info(e.bad_type) end

  local fitem = tree:add(f.flags, tvb(4, 2))
  fitem:add(f.song_start, tvb(4, 2))
  fitem:add(f.unknown_flags, tvb(4, 2))
  local song_start = (flags % 2) == 1
  if song_start then
    fitem:append_text(" (SONG_START)")
    fitem:add_proto_expert_info(e.song_start)
  end

  local ritem = tree:add(f.reserved, tvb(6, 2))
  if tvb(6, 2):uint() ~= 0 then ritem:add_proto_expert_info(e.bad_reserved) end

  tree:add(f.stream_id, tvb(8, 4))
  local sitem = tree:add(f.seq, tvb(12, 4))
  local lost = nil
  if ftype == TYPE_DATA then
    lost = track_sequence(pinfo, tvb:offset(), stream_id, seq)
    if lost ~= nil then
      local li = sitem:add(f.lost, tvb(12, 4), lost)
      li:set_generated()
      li:add_proto_expert_info(e.seq_gap,
        string.format("DATA sequence gap: %d frame(s) missing before %d", lost, seq))
    end
  end
  local tsitem = tree:add(f.timestamp_us, tvb(16, 8))
  local ts_seconds = ts:tonumber() / 1e6
  tsitem:append_text(string.format(" (%.6f s)", ts_seconds))
  tree:add(f.timestamp_s, tvb(16, 8), ts_seconds):set_generated()

  local litem = tree:add(f.length, tvb(24, 4))
  local max_payload = (transport == "udp") and UDP_MAX_PAYLOAD or STREAM_MAX_PAYLOAD
  if plen > max_payload then
    litem:add_proto_expert_info(e.too_large,
      string.format("Payload length %d exceeds the %s limit of %d bytes", plen,
        transport:upper(), max_payload))
  end
  local length_ok = true
  if avail < frame_len then
    length_ok = false
    litem:add_proto_expert_info(e.bad_length,
      string.format("Length says %d payload bytes, only %d present", plen, avail - HEADER_SIZE))
  elseif transport == "udp" and avail > frame_len then
    length_ok = false
    litem:add_proto_expert_info(e.bad_length,
      string.format("%d bytes after the %d-byte payload (datagram must be exactly 32 + length)",
        avail - frame_len, plen))
  end

  -- CRC-32C over header bytes 0..27, then the payload (only if the payload is all there).
  local crc_item = tree:add(f.crc, tvb(28, 4))
  local crc_ok = nil
  if avail >= frame_len and tvb:len() >= frame_len then
    local state = crc32c_update(0xffffffff, tvb:raw(0, 28))
    if plen > 0 then state = crc32c_update(state, tvb:raw(HEADER_SIZE, plen)) end
    local calc = crc32c_final(state)
    crc_ok = (calc == tvb(28, 4):uint())
    crc_item:add(f.crc_calc, tvb(28, 4), calc):set_generated()
    crc_item:add(f.crc_status, tvb(28, 4), crc_ok and "good" or "bad"):set_generated()
    if crc_ok then
      crc_item:append_text(" [correct]")
    else
      crc_item:append_text(string.format(" [incorrect, should be 0x%08x]", calc))
      crc_item:add_proto_expert_info(e.bad_crc,
        string.format("Bad CRC-32C: frame says 0x%08x, bytes give 0x%08x",
          tvb(28, 4):uint(), calc))
    end
  else
    crc_item:add(f.crc_status, tvb(28, 4), "unverified"):set_generated()
  end

  -- Payload
  local info
  local shown = math.max(0, math.min(plen, avail - HEADER_SIZE))
  if ftype == TYPE_DATA then
    if shown > 0 then tree:add(f.payload, tvb(HEADER_SIZE, shown)) end
    info = string.format("DATA seq=%d ts=%.3fs stream=0x%08x len=%d", seq, ts_seconds,
      stream_id, plen)
    if song_start then info = info .. " SONG_START" end
  else
    if shown > 0 then
      local prange = tvb(HEADER_SIZE, shown)
      local text = prange:string(ENC_UTF_8)
      tree:add(f.json, prange, text)
      if soundsock.prefs.json_tree and json_dissector ~= nil then
        pcall(function() json_dissector:call(prange:tvb(), pinfo, tree) end)
      end
      local limit = soundsock.prefs.info_json_max
      if #text > limit then text = text:sub(1, limit) .. "…" end
      info = string.format("%s %s", name, text)
    else
      info = string.format("%s stream=0x%08x", name, stream_id)
    end
  end
  if crc_ok == false then info = info .. " [BAD CRC]" end
  if not length_ok then info = info .. " [BAD LENGTH]" end

  -- Several frames can share one TCP segment: list them all, separated by " | ". The text so
  -- far lives in pinfo.private, which Wireshark resets for every dissection of a packet.
  local before = pinfo.private.soundsock_info
  if before ~= nil and before ~= "" then info = before .. " | " .. info end
  pinfo.private.soundsock_info = info
  pinfo.cols.protocol:set("soundsock")
  pinfo.cols.info:clear_fence()
  pinfo.cols.info:set(info)
  pinfo.cols.info:fence()
  return covered
end

-- Whether `tvb` (a whole UDP datagram) looks like one soundsock/2 frame.
local function looks_like_datagram(tvb)
  local len = tvb:len()
  if len < HEADER_SIZE or tvb:reported_length_remaining() ~= len then return false end
  if tvb(0, 2):uint() ~= MAGIC or tvb(2, 1):uint() ~= VERSION then return false end
  return HEADER_SIZE + tvb(24, 4):uint() == len
end

---------------------------------------------------------------------------------------------
-- UDP: one frame per datagram.
---------------------------------------------------------------------------------------------
local function dissect_udp(tvb, pinfo, tree)
  if tvb:len() < HEADER_SIZE or tvb(0, 2):uint() ~= MAGIC then return 0 end
  return dissect_frame(tvb, pinfo, tree, "udp")
end

local function heuristic_udp(tvb, pinfo, tree)
  if not looks_like_datagram(tvb) then return false end
  dissect_udp(tvb, pinfo, tree)
  return true
end

---------------------------------------------------------------------------------------------
-- TCP (plaintext): frames back to back on the byte stream; reassembled by the TCP dissector.
---------------------------------------------------------------------------------------------
local function tcp_pdu_len(tvb, pinfo, offset)
  return HEADER_SIZE + tvb(offset + 24, 4):uint()
end

local function tcp_pdu(tvb, pinfo, tree)
  return dissect_frame(tvb, pinfo, tree, "tcp")
end

local function dissect_tcp(tvb, pinfo, tree)
  -- Not a frame boundary with our magic (e.g. TLS records): let other dissectors try.
  if tvb:len() < 3 or tvb(0, 2):uint() ~= MAGIC or tvb(2, 1):uint() ~= VERSION then
    return 0
  end
  dissect_tcp_pdus(tvb, tree, HEADER_SIZE, tcp_pdu_len, tcp_pdu, true)
  return tvb:len()
end

-- The same dissector serves both port tables (and "Decode As"); pinfo.port_type tells them
-- apart (2 = TCP in Wireshark's port_type enum).
local PT_TCP = 2
soundsock.dissector = function(tvb, pinfo, tree)
  if pinfo.port_type == PT_TCP then return dissect_tcp(tvb, pinfo, tree) end
  return dissect_udp(tvb, pinfo, tree)
end

---------------------------------------------------------------------------------------------
-- Registration
---------------------------------------------------------------------------------------------
local udp_table = DissectorTable.get("udp.port")
local tcp_table = DissectorTable.get("tcp.port")

local registered_udp, registered_tcp = 0, 0
local function register_ports()
  if registered_udp ~= 0 then udp_table:remove(registered_udp, soundsock) end
  if registered_tcp ~= 0 then tcp_table:remove(registered_tcp, soundsock) end
  registered_udp = soundsock.prefs.udp_port
  registered_tcp = soundsock.prefs.tcp_port
  if registered_udp ~= 0 then udp_table:add(registered_udp, soundsock) end
  if registered_tcp ~= 0 then tcp_table:add(registered_tcp, soundsock) end
end

function soundsock.prefs_changed()
  register_ports()
end

register_ports()
soundsock:register_heuristic("udp", heuristic_udp)
