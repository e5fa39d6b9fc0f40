-- lpjson.lua: Wireshark dissector for the length-prefixed JSON protocol ("lpjson")
-- of the Real Python guide "Socket Programming in Python".
--
-- A message is a 2-byte big-endian header length N, N bytes of a UTF-8 JSON header
-- (byteorder, content-type, content-encoding, content-length), then content-length
-- bytes of content. Messages follow each other back to back on a TCP stream.
-- The spec is docs/PROTOCOL.md in the harness repository (the framing:
-- docs/PROTOCOL.md#framing; the violations: docs/PROTOCOL.md#error-codes); the comments
-- below cite its sections.
--
-- Wireshark 4.0+ (Lua 5.2). Load it with `wireshark -X lua_script:lpjson.lua` or copy
-- it into the personal Lua plugins folder (`harness wireshark install` does that).
--
-- What it does:
--   * TCP port 65432 (preference "lpjson.port"), plus a heuristic for other ports;
--   * TCP reassembly: a message split over many segments is dissected once, in the
--     segment that completes it; several messages in one segment are all dissected;
--   * fields lpjson.header_length, .header, .byteorder, .content_type,
--     .content_encoding, .content_length, .content, .extension;
--   * text/json content goes to Wireshark's own JSON dissector (preference
--     "lpjson.json_subtree"; off: the content's text as one line, lpjson.text);
--   * every protocol violation of the harness codec (harness/errors.py) is flagged
--     with an expert info item and the field lpjson.violation (its code), checked in
--     the codec's order (docs/PROTOCOL.md#check-order): the header must be strict
--     UTF-8 without a BOM, nest at most 200 levels, be strict JSON (RFC 8259, no
--     NaN/Infinity, no duplicate keys, no lone surrogate escapes), be an object with
--     the four keys and valid values, and announce at most "max_content_length" bytes
--     (preference, default 1 MiB).
--     Wireshark 4.0 has no JSON library for Lua, so a strict JSON reader is built in.
--     A stream that ends (FIN) inside a message gets "incomplete-message" on the FIN
--     (docs/PROTOCOL.md#f4). After a framing or header violation nothing in that
--     direction is parsed any more (a length-prefixed stream cannot resynchronise,
--     docs/PROTOCOL.md#f5), as in the codec.

local lpjson = Proto("lpjson", "Length-prefixed JSON")

local DEFAULT_PORT = 65432
local DEFAULT_MAX_CONTENT_LENGTH = 1048576
local MAX_DEPTH = 200             -- harness.strictjson.MAX_DEPTH
local MAX_INT_DIGITS = 4300       -- Python's default int max str digits

local f = lpjson.fields
f.header_length = ProtoField.uint16("lpjson.header_length", "Header length", base.DEC)
f.header = ProtoField.string("lpjson.header", "JSON header", base.UNICODE)
f.byteorder = ProtoField.string("lpjson.byteorder", "Byte order", base.UNICODE)
f.content_type = ProtoField.string("lpjson.content_type", "Content type", base.UNICODE)
f.content_encoding = ProtoField.string("lpjson.content_encoding", "Content encoding", base.UNICODE)
f.content_length = ProtoField.uint64("lpjson.content_length", "Content length", base.DEC)
f.extension = ProtoField.string("lpjson.extension", "Extension header", base.UNICODE)
f.content = ProtoField.bytes("lpjson.content", "Content")
f.text = ProtoField.string("lpjson.text", "Content text", base.UNICODE)
f.violation = ProtoField.string("lpjson.violation", "Violation")
f.unparsed = ProtoField.bytes("lpjson.unparsed", "Not parsed (after a protocol error)")
f.missing = ProtoField.uint32("lpjson.missing", "Bytes missing", base.DEC)
f.gap = ProtoField.bytes("lpjson.gap", "Data after a gap in the TCP stream (not parsed)")
f.request = ProtoField.bool("lpjson.request", "Request")
f.response = ProtoField.bool("lpjson.response", "Response")
f.response_in = ProtoField.framenum("lpjson.response_in", "Response in frame", base.NONE, frametype.RESPONSE)
f.request_in = ProtoField.framenum("lpjson.request_in", "Request in frame", base.NONE, frametype.REQUEST)
f.time = ProtoField.relative_time("lpjson.time", "Time since request")
f.action = ProtoField.string("lpjson.action", "Action", base.UNICODE)
f.value = ProtoField.string("lpjson.value", "Value", base.UNICODE)
f.result = ProtoField.string("lpjson.result", "Result", base.UNICODE)
f.error = ProtoField.string("lpjson.error", "Error", base.UNICODE)

-- One expert item per violation class of harness/errors.py (the code is the suffix),
-- one per error code of docs/PROTOCOL.md#error-codes.
local MALFORMED, PROTOCOL = expert.group.MALFORMED, expert.group.PROTOCOL
local ERROR, WARN = expert.severity.ERROR, expert.severity.WARN
local EXPERT_SPEC = {
    { "zero-header-length", "Header length is 0 (an empty header is not a JSON object)", MALFORMED, ERROR },
    { "header-not-utf8", "JSON header is not strict UTF-8 (or has a BOM, or a lone surrogate)", MALFORMED, ERROR },
    { "header-not-json", "JSON header is not strict JSON", MALFORMED, ERROR },
    { "non-finite-number", "JSON header holds NaN or Infinity", MALFORMED, ERROR },
    { "duplicate-key", "JSON header repeats a key", MALFORMED, ERROR },
    { "header-not-object", "JSON header is not an object", MALFORMED, ERROR },
    { "missing-header-key", "JSON header lacks a required key", MALFORMED, ERROR },
    { "invalid-header-value", "JSON header has an invalid value", MALFORMED, ERROR },
    { "content-too-large", "content-length is over the limit", PROTOCOL, ERROR },
    { "incomplete-message", "Stream ended inside a message", MALFORMED, ERROR },
    { "unsupported-encoding", "text/json content-encoding is not a supported text encoding", PROTOCOL, WARN },
    { "content-not-decodable", "text/json content does not decode in its content-encoding", PROTOCOL, WARN },
    { "content-not-json", "text/json content is not strict JSON", PROTOCOL, WARN },
}
local experts = {}
for _, spec in ipairs(EXPERT_SPEC) do
    local code = spec[1]
    local e = ProtoExpert.new("lpjson." .. code:gsub("-", "_"), spec[2], spec[3], spec[4])
    experts[code] = e
    lpjson.experts[#lpjson.experts + 1] = e
end
local ex_truncated = ProtoExpert.new("lpjson.truncated",
    "Message cut short: TCP reassembly is off or segments are missing", expert.group.REASSEMBLE, WARN)
local ex_after_error = ProtoExpert.new("lpjson.after_error",
    "Data after a protocol error: the stream cannot be resynchronised", expert.group.SEQUENCE, expert.severity.NOTE)
local ex_gap = ProtoExpert.new("lpjson.gap_in_stream",
    "Gap in the TCP stream (segments missing, or out of order with TCP's \"Reassemble out-of-order segments\" off): not parsed",
    expert.group.REASSEMBLE, WARN)
lpjson.experts[#lpjson.experts + 1] = ex_truncated
lpjson.experts[#lpjson.experts + 1] = ex_gap
lpjson.experts[#lpjson.experts + 1] = ex_after_error

lpjson.prefs.port = Pref.uint("TCP port", DEFAULT_PORT, "TCP port of lpjson (other ports: the heuristic)")
lpjson.prefs.max_content_length = Pref.uint("Maximum content length", DEFAULT_MAX_CONTENT_LENGTH,
    "A header announcing more content bytes than this is flagged content-too-large")
lpjson.prefs.json_subtree = Pref.bool("Content as a JSON subtree", true,
    "Show valid text/json content with Wireshark's JSON dissector (a JSON subtree, json.* fields). " ..
    "Off: the content's text as one line (lpjson.text), no json.* fields; about a fifth less work per message")

local f_tcp_fin = Field.new("tcp.flags.fin")
local f_tcp_seq = Field.new("tcp.seq")
local f_tcp_syn = Field.new("tcp.flags.syn")
local f_tcp_ack = Field.new("tcp.flags.ack")
local f_tcp_lost_segment = Field.new("tcp.analysis.lost_segment")

local json_dissector = Dissector.get("json")

local byte, sub, find, char, concat = string.byte, string.sub, string.find, string.char, table.concat

---------------------------------------------------------------------------------------
-- Strict UTF-8 (as Python's decoder: no overlongs, no surrogates, nothing past U+10FFFF):
-- docs/PROTOCOL.md#h1
---------------------------------------------------------------------------------------

local function utf8_valid(s)
    local i, n = find(s, "[\128-\255]"), #s
    while i do
        local c = byte(s, i)
        local need, lo, hi = 0, 0x80, 0xBF
        if c >= 0xC2 and c <= 0xDF then need = 1
        elseif c == 0xE0 then need, lo = 2, 0xA0
        elseif c == 0xED then need, hi = 2, 0x9F
        elseif c >= 0xE1 and c <= 0xEF then need = 2
        elseif c == 0xF0 then need, lo = 3, 0x90
        elseif c == 0xF4 then need, hi = 3, 0x8F
        elseif c >= 0xF1 and c <= 0xF3 then need = 3
        else return false, i - 1 end
        if i + need > n then return false, i - 1 end
        local c2 = byte(s, i + 1)
        if c2 < lo or c2 > hi then return false, i - 1 end
        for k = 2, need do
            local ck = byte(s, i + k)
            if ck < 0x80 or ck > 0xBF then return false, i - 1 end
        end
        i = find(s, "[\128-\255]", i + need + 1)
    end
    return true
end

local function utf8_char(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then return char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
        return char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
        0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

---------------------------------------------------------------------------------------
-- Nesting depth the way harness.strictjson._depth counts it: strings removed with the
-- regex "(?:[^"\\]|\\.)*" (DOTALL), then brackets counted: docs/PROTOCOL.md#h2
---------------------------------------------------------------------------------------

local function too_deep(raw)
    local _, opens1 = raw:gsub("%[", "")
    local _, opens2 = raw:gsub("{", "")
    if opens1 + opens2 <= MAX_DEPTH then return false end
    local depth, deepest, i, n = 0, 0, 1, #raw
    local strings = true
    while i <= n do
        local c = byte(raw, i)
        if c == 34 and strings then
            -- the regex matches up to the first unescaped quote; if there is none, no later
            -- quote can start a match either (it would follow the same escape pairing)
            local j, closed = i + 1, false
            while j <= n do
                local d = byte(raw, j)
                if d == 34 then closed = true break
                elseif d == 92 then
                    if j + 1 > n then break end
                    j = j + 2
                else j = j + 1 end
            end
            if closed then i = j + 1 else strings = false; i = i + 1 end
        else
            if c == 91 or c == 123 then
                depth = depth + 1
                if depth > deepest then deepest = depth end
            elseif c == 93 or c == 125 then
                depth = depth - 1
            end
            i = i + 1
        end
    end
    return deepest > MAX_DEPTH
end

---------------------------------------------------------------------------------------
-- Strict JSON reader, with the verdicts of Python's json module (C scanner, strict=True)
-- as harness.strictjson.loads_strict uses it: docs/PROTOCOL.md#h2 to docs/PROTOCOL.md#h4.
-- Values: Lua strings, true/false, NULL, {t="num", lit=, float=}, {t="arr", ...},
-- {t="obj", keys={...}, map={}, span={key={first,last}}} (spans are byte positions).
---------------------------------------------------------------------------------------

local NULL = setmetatable({}, { __tostring = function() return "null" end })

local function is_digit(c) return c ~= nil and c >= 48 and c <= 57 end

local ESCAPES = { [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f", [110] = "\n",
    [114] = "\r", [116] = "\t" }

-- parse(s): returns value or nil, plus a context {non_finite=, duplicate=, surrogate=, err=}
local function parse_json(s)
    local ctx = {}
    local n = #s
    local pos = 1
    local parse_value

    local function fail(msg)
        error({ json = msg .. " at byte " .. (pos - 1) }, 0)
    end

    local function skip_ws()
        pos = find(s, "[^ \t\n\r]", pos) or n + 1
    end

    local function hex4(at)
        local h = sub(s, at, at + 3)
        if #h < 4 or not h:match("^%x%x%x%x$") then return nil end
        return tonumber(h, 16)
    end

    local function parse_string()
        -- pos is on the opening quote
        local parts = {}
        local i = pos + 1
        while true do
            local j = find(s, '[%z\1-\31"\\]', i)
            if not j then pos = n + 1; fail("unterminated string") end
            if j > i then parts[#parts + 1] = sub(s, i, j - 1) end
            local c = byte(s, j)
            if c == 34 then
                pos = j + 1
                return concat(parts)
            elseif c == 92 then
                local e = byte(s, j + 1)
                if e == 117 then
                    local cp = hex4(j + 2)
                    if not cp then pos = j; fail("invalid \\uXXXX escape") end
                    i = j + 6
                    if cp >= 0xD800 and cp <= 0xDBFF and byte(s, i) == 92 and byte(s, i + 1) == 117 then
                        local lo = hex4(i + 2)
                        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
                            cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
                            i = i + 6
                        end
                    end
                    if cp >= 0xD800 and cp <= 0xDFFF then ctx.surrogate = true end
                    parts[#parts + 1] = utf8_char(cp)
                elseif e and ESCAPES[e] then
                    parts[#parts + 1] = ESCAPES[e]
                    i = j + 2
                else
                    pos = j; fail("invalid escape")
                end
            else
                pos = j; fail("invalid control character in string")
            end
        end
    end

    local function parse_number()
        local start = pos
        local p = pos
        if byte(s, p) == 45 then p = p + 1 end
        local c = byte(s, p)
        if c == 48 then p = p + 1
        elseif c and c >= 49 and c <= 57 then p = find(s, "[^0-9]", p + 1) or n + 1
        else fail("expecting value") end
        local int_digits = p - start - (byte(s, start) == 45 and 1 or 0)
        local float = false
        if byte(s, p) == 46 and is_digit(byte(s, p + 1)) then
            p = find(s, "[^0-9]", p + 1) or n + 1
            float = true
        end
        local e = byte(s, p)
        if e == 101 or e == 69 then
            local q = p + 1
            local sign = byte(s, q)
            if sign == 43 or sign == 45 then q = q + 1 end
            if is_digit(byte(s, q)) then
                p = find(s, "[^0-9]", q) or n + 1
                float = true
            end
        end
        local lit = sub(s, start, p - 1)
        pos = p
        if float then
            local v = tonumber(lit)
            if v == math.huge or v == -math.huge then ctx.non_finite = ctx.non_finite or lit end
        elseif int_digits > MAX_INT_DIGITS then
            pos = start; fail("integer of more than " .. MAX_INT_DIGITS .. " digits")
        end
        return { t = "num", lit = lit, float = float }
    end

    local function parse_object(depth)
        pos = pos + 1
        local obj = { t = "obj", keys = {}, map = {}, span = {} }
        skip_ws()
        if byte(s, pos) == 125 then pos = pos + 1; return obj end
        local seen = {}
        while true do
            if byte(s, pos) ~= 34 then fail("expecting property name in double quotes") end
            local key = parse_string()
            skip_ws()
            if byte(s, pos) ~= 58 then fail("expecting ':'") end
            pos = pos + 1
            skip_ws()
            local first = pos
            local value = parse_value(depth + 1)
            if seen[key] then
                ctx.duplicate = ctx.duplicate or key
            else
                seen[key] = true
                obj.keys[#obj.keys + 1] = key
            end
            obj.map[key] = value
            obj.span[key] = { first, pos - 1 }
            skip_ws()
            local c = byte(s, pos)
            if c == 125 then pos = pos + 1; return obj end
            if c ~= 44 then fail("expecting ',' or '}'") end
            pos = pos + 1
            skip_ws()
        end
    end

    local function parse_array(depth)
        pos = pos + 1
        local arr = { t = "arr" }
        skip_ws()
        if byte(s, pos) == 93 then pos = pos + 1; return arr end
        while true do
            arr[#arr + 1] = parse_value(depth + 1)
            skip_ws()
            local c = byte(s, pos)
            if c == 93 then pos = pos + 1; return arr end
            if c ~= 44 then fail("expecting ',' or ']'") end
            pos = pos + 1
            skip_ws()
        end
    end

    parse_value = function(depth)
        if depth > 10000 then fail("nested too deeply") end
        local c = byte(s, pos)
        if c == 34 then return parse_string()
        elseif c == 123 then return parse_object(depth)
        elseif c == 91 then return parse_array(depth)
        elseif c == 110 and sub(s, pos, pos + 3) == "null" then pos = pos + 4; return NULL
        elseif c == 116 and sub(s, pos, pos + 3) == "true" then pos = pos + 4; return true
        elseif c == 102 and sub(s, pos, pos + 4) == "false" then pos = pos + 5; return false
        elseif c == 78 and sub(s, pos, pos + 2) == "NaN" then
            pos = pos + 3; ctx.non_finite = ctx.non_finite or "NaN"; return { t = "num", lit = "NaN", float = true }
        elseif c == 73 and sub(s, pos, pos + 7) == "Infinity" then
            pos = pos + 8; ctx.non_finite = ctx.non_finite or "Infinity"
            return { t = "num", lit = "Infinity", float = true }
        elseif c == 45 and sub(s, pos, pos + 8) == "-Infinity" then
            pos = pos + 9; ctx.non_finite = ctx.non_finite or "-Infinity"
            return { t = "num", lit = "-Infinity", float = true }
        elseif c == 45 or is_digit(c) then return parse_number()
        end
        fail("expecting value")
    end

    local ok, result = pcall(function()
        skip_ws()
        local v = parse_value(0)
        skip_ws()
        if pos <= n then fail("extra data") end
        return v
    end)
    if not ok then
        if type(result) == "table" and result.json then
            ctx.err = result.json
            return nil, ctx
        end
        error(result, 0)
    end
    return result, ctx
end

-- loads_strict: returns value, or nil + kind ("utf8", "json", "non-finite", "duplicate") + reason.
-- raw: the bytes (for the depth count); text: their UTF-8 text when already decoded.
local function loads_strict(raw, text)
    if text == nil then
        local ok, at = utf8_valid(raw)
        if not ok then return nil, "utf8", "invalid UTF-8 at byte " .. at end
        text = raw
    end
    if sub(text, 1, 3) == "\239\187\191" then return nil, "utf8", "starts with a byte order mark" end
    if too_deep(raw) then return nil, "json", "nested more than " .. MAX_DEPTH .. " levels deep" end
    local value, ctx = parse_json(text)
    if value == nil then return nil, "json", ctx.err end
    if ctx.non_finite then return nil, "non-finite", "non-finite number " .. ctx.non_finite end
    if ctx.duplicate then return nil, "duplicate", "duplicate key '" .. ctx.duplicate .. "'" end
    if ctx.surrogate then return nil, "utf8", "escapes a lone UTF-16 surrogate" end
    return value
end

---------------------------------------------------------------------------------------
-- Header rules (harness.message.check_header and the decoder's limit):
-- docs/PROTOCOL.md#header-rules, docs/PROTOCOL.md#l1
---------------------------------------------------------------------------------------

local HEADER_VIOLATION = { utf8 = "header-not-utf8", json = "header-not-json",
    ["non-finite"] = "non-finite-number", duplicate = "duplicate-key" }
local REQUIRED = { "byteorder", "content-type", "content-encoding", "content-length" }

local function json_type(v)
    if type(v) == "string" then return "string" end
    if type(v) == "boolean" then return "bool" end
    if v == NULL then return "null" end
    return v.t
end

-- A JSON integer literal's value, as a Lua number (exact up to 2^53) or math.huge.
local function int_value(lit)
    local digits = lit:gsub("^-", ""):gsub("^0+(%d)", "%1")
    if #digits > 15 then return math.huge end
    return tonumber(digits)
end

-- Returns header info table or nil, violation code, reason
local function check_header(raw, max_content_length)
    local value, kind, reason = loads_strict(raw)
    if value == nil then return nil, HEADER_VIOLATION[kind], "JSON header: " .. reason end
    local jtype = json_type(value)
    if jtype ~= "obj" then
        local python = { string = "str", bool = "bool", null = "NoneType", arr = "list",
            num = jtype == "num" and value.float and "float" or "int" }
        return nil, "header-not-object", "JSON header is a " .. python[jtype] .. ", not an object"
    end
    local map = value.map
    local missing = {}
    for _, key in ipairs(REQUIRED) do
        if map[key] == nil then missing[#missing + 1] = "'" .. key .. "'" end
    end
    if #missing > 0 then return nil, "missing-header-key", "missing required key " .. concat(missing, ", ") end
    local bo = map["byteorder"]
    if bo ~= "little" and bo ~= "big" then
        return nil, "invalid-header-value", "byteorder must be 'little' or 'big'"
    end
    for _, key in ipairs({ "content-type", "content-encoding" }) do
        local v = map[key]
        if type(v) ~= "string" or v == "" then
            return nil, "invalid-header-value", key .. " must be a non-empty string"
        end
    end
    local cl = map["content-length"]
    if json_type(cl) ~= "num" or cl.float or (sub(cl.lit, 1, 1) == "-" and int_value(cl.lit) ~= 0) then
        return nil, "invalid-header-value", "content-length must be an integer >= 0"
    end
    local length = int_value(cl.lit)
    local info = { value = value, length = length, length_lit = cl.lit:gsub("^-", "") }
    if length > max_content_length then
        return info, "content-too-large",
            "content-length " .. info.length_lit .. " exceeds the limit of " .. max_content_length .. " bytes"
    end
    return info
end

-- message_length() and dissect_message() read the same header one after the other: keep
-- the last verdict.
local cached = { raw = nil, limit = nil, info = nil, code = nil, reason = nil }

local function check_header_cached(raw, max_content_length)
    if cached.raw ~= raw or cached.limit ~= max_content_length then
        cached.info, cached.code, cached.reason = check_header(raw, max_content_length)
        cached.raw, cached.limit = raw, max_content_length
    end
    return cached.info, cached.code, cached.reason
end

---------------------------------------------------------------------------------------
-- text/json content (harness.message.Message.json): encoding allow-list, decoding, JSON:
-- docs/PROTOCOL.md#content-rules
---------------------------------------------------------------------------------------

local TEXT_ENCODINGS = { ["utf-8"] = true, ["utf-16"] = true, ["utf-32"] = true, ascii = true, ["latin-1"] = true }

local function utf16_to_utf8(s, little)
    if #s % 2 == 1 then return nil, "truncated data" end
    local out, i, n = {}, 1, #s
    while i <= n do
        local a, b = byte(s, i, i + 1)
        local u = little and (a + b * 256) or (a * 256 + b)
        i = i + 2
        if u >= 0xD800 and u <= 0xDBFF then
            if i > n then return nil, "unexpected end of data" end
            local c, d = byte(s, i, i + 1)
            local l = little and (c + d * 256) or (c * 256 + d)
            if l < 0xDC00 or l > 0xDFFF then return nil, "illegal UTF-16 surrogate" end
            u = 0x10000 + (u - 0xD800) * 1024 + (l - 0xDC00)
            i = i + 2
        elseif u >= 0xDC00 and u <= 0xDFFF then
            return nil, "illegal encoding"
        end
        out[#out + 1] = utf8_char(u)
    end
    return concat(out)
end

local function utf32_to_utf8(s, little)
    if #s % 4 ~= 0 then return nil, "truncated data" end
    local out = {}
    for i = 1, #s, 4 do
        local a, b, c, d = byte(s, i, i + 3)
        local u = little and (a + b * 256 + c * 65536 + d * 16777216) or (a * 16777216 + b * 65536 + c * 256 + d)
        if u > 0x10FFFF or (u >= 0xD800 and u <= 0xDFFF) then return nil, "code point not in range" end
        out[#out + 1] = utf8_char(u)
    end
    return concat(out)
end

-- Python's bytes.decode(encoding) for the allow-listed encodings, to UTF-8 (native order: little).
local function decode_text(raw, encoding)
    if encoding == "utf-8" then
        local ok, at = utf8_valid(raw)
        if not ok then return nil, "invalid UTF-8 at byte " .. at end
        return raw
    elseif encoding == "ascii" then
        local at = find(raw, "[\128-\255]")
        if at then return nil, "byte >= 0x80 at byte " .. (at - 1) end
        return raw
    elseif encoding == "latin-1" then
        return (raw:gsub("[\128-\255]", function(c) return utf8_char(byte(c)) end))
    elseif encoding == "utf-16" then
        local bom = sub(raw, 1, 2)
        if bom == "\255\254" then return utf16_to_utf8(sub(raw, 3), true) end
        if bom == "\254\255" then return utf16_to_utf8(sub(raw, 3), false) end
        return utf16_to_utf8(raw, true)
    else -- utf-32
        local bom = sub(raw, 1, 4)
        if bom == "\255\254\0\0" then return utf32_to_utf8(sub(raw, 5), true) end
        if bom == "\0\0\254\255" then return utf32_to_utf8(sub(raw, 5), false) end
        return utf32_to_utf8(raw, true)
    end
end

-- Returns value, utf8 text  or  nil, code, reason
local function read_content(raw, encoding)
    local enc = encoding:lower()
    if not TEXT_ENCODINGS[enc] then
        return nil, "unsupported-encoding", "content-encoding '" .. encoding .. "' is not a supported text encoding"
    end
    local text, why = decode_text(raw, enc)
    if text == nil then return nil, "content-not-decodable", "content is not valid " .. encoding .. ": " .. why end
    local value, _, reason = loads_strict(raw, text)
    if value == nil then return nil, "content-not-json", "content is not strict JSON: " .. reason end
    return value, text
end

-- The same content (a repeated request or answer) is read once: the last few verdicts are kept.
local content_memo, content_memo_size = {}, 0

local function read_content_cached(raw, encoding)
    if #raw > 4096 then return read_content(raw, encoding) end
    local key = encoding .. "\0" .. raw
    local hit = content_memo[key]
    if hit then return hit[1], hit[2], hit[3] end
    local value, text_or_code, reason = read_content(raw, encoding)
    if content_memo_size >= 256 then content_memo, content_memo_size = {}, 0 end
    content_memo[key] = { value, text_or_code, reason }
    content_memo_size = content_memo_size + 1
    return value, text_or_code, reason
end

---------------------------------------------------------------------------------------
-- Info column
---------------------------------------------------------------------------------------

local function shorten(s, n)
    n = n or 60
    if #s <= n then return s end
    local cut = n
    while cut > 0 and byte(s, cut + 1) and byte(s, cut + 1) >= 0x80 and byte(s, cut + 1) < 0xC0 do cut = cut - 1 end
    return sub(s, 1, cut) .. "…"
end

local function show(v)
    local t = json_type(v)
    if t == "string" then return "'" .. shorten(v) .. "'" end
    if t == "num" then return v.lit end
    if t == "bool" then return tostring(v) end
    if t == "null" then return "null" end
    return t == "obj" and "{…}" or "[…]"
end

local function summary(ctype, encoding, length, value)
    if value ~= nil and json_type(value) == "obj" then
        local map = value.map
        if type(map.action) == "string" then
            return map.action .. (map.value ~= nil and (" " .. show(map.value)) or "")
        elseif map.result ~= nil then return "result " .. show(map.result)
        elseif map.error ~= nil then
            return "error " .. show(map.error) .. (type(map.detail) == "string" and (": " .. shorten(map.detail)) or "")
        end
    end
    if ctype:lower():find("^binary") or encoding == "binary" then
        return "binary, " .. length .. " bytes"
    end
    return shorten(ctype, 40) .. ", " .. length .. " bytes"
end

---------------------------------------------------------------------------------------
-- Per-stream state. The first pass records, per direction of each TCP stream, where a
-- violation or a gap happened (frame number and the message's ordinal within the frame),
-- the bytes consumed by whole messages, what the pending message needs, and the number of
-- each message within its direction (request k is answered by response k, in order, as
-- the protocol has one response per request); later passes (the GUI re-dissecting a
-- packet) read the same decisions back.
---------------------------------------------------------------------------------------

local streams = {}        -- direction key -> state of that direction
local conversations = {}  -- conversation key -> { client =, requests =, responses = } (k -> frame, time)
local messages = {}       -- frame -> { request =, conv =, [ordinal] = k } (first pass)
local eos_reports = {}
local frame_ctx = { number = -1, ordinal = 0, info = {}, marker = nil }

local function last_value(field)
    local all = { field() }
    local fi = all[#all]
    return fi and fi.value
end

-- Keyed by the 4-tuple from pinfo: field extractors (tcp.stream) are empty when a pass
-- builds no tree (tshark -2's first pass), and the key must be the same in every pass.
local function endpoint(address, port)
    return tostring(address) .. "/" .. tostring(port)
end

-- A frame carries one direction: its key is built once per frame (and pass).
local key_frame, key_cached, key_visited = -1, nil, nil

local function direction_key(pinfo)
    local number, visited = pinfo.number, pinfo.visited
    if number ~= key_frame or visited ~= key_visited then
        key_cached = endpoint(pinfo.src, pinfo.src_port) .. ">" .. endpoint(pinfo.dst, pinfo.dst_port)
        key_frame, key_visited = number, visited
    end
    return key_cached
end

local function conversation(pinfo)
    local a, b = endpoint(pinfo.src, pinfo.src_port), endpoint(pinfo.dst, pinfo.dst_port)
    local key = a < b and (a .. "|" .. b) or (b .. "|" .. a)
    local conv = conversations[key]
    if not conv then
        conv = { requests = { frame = {}, time = {} }, responses = { frame = {}, time = {} } }
        conversations[key] = conv
    end
    return conv
end

-- The client is the side that sent the SYN; lacking that (a capture started mid-stream),
-- the side that is not on the lpjson port, or else the side with the higher (ephemeral) port.
local function sends_requests(pinfo, conv)
    local src = endpoint(pinfo.src, pinfo.src_port)
    if conv.client then return conv.client == src end
    local port = lpjson.prefs.port
    if pinfo.dst_port == port then return true end
    if pinfo.src_port == port then return false end
    return pinfo.src_port > pinfo.dst_port
end

local function direction_state(pinfo)
    local key = direction_key(pinfo)
    local st = streams[key]
    if not st then
        local conv = conversation(pinfo)
        st = { consumed = 0, need = 0, count = 0, conv = conv, request = sends_requests(pinfo, conv) }
        streams[key] = st
    end
    return st
end

local function after_error(st, number, ordinal)
    local e = st.failed
    if not e then return false end
    return number > e.frame or (number == e.frame and ordinal > e.ordinal)
end

function lpjson.init()
    streams = {}
    key_frame, key_cached, key_visited = -1, nil, nil
    conversations = {}
    messages = {}
    eos_reports = {}
    frame_ctx = { number = -1, ordinal = 0, info = {}, marker = nil }
end

---------------------------------------------------------------------------------------
-- Dissection. Every Lua-to-C call (a TvbRange, a tree item, a column write, a pinfo
-- attribute) costs more than pages of Lua, so dissect_stream() fetches the bytes TCP hands
-- over once (tvb:raw()), cuts them into messages in Lua, asks TCP itself for the rest of an
-- unfinished message (pinfo.desegment_offset/desegment_len, as tcp_dissect_pdus would, so
-- a segment of many messages is read in one pass), and writes the columns once per call;
-- dissect_message() decides everything about a message first, then builds its subtree with
-- each item's label given as it is added.
---------------------------------------------------------------------------------------

local function add_violation(item, code, reason, range)
    if range then item:add(f.violation, range, code) else item:add(f.violation, code) end
    item:add_proto_expert_info(experts[code], code .. ": " .. reason)
end

-- The Info column lists every message of the frame after the frame's marker (a frame
-- carries one direction); the messages of a frame may come in several calls (a reassembled
-- message, then the rest of the segment), so the list lives in frame_ctx.
local function add_info(ordinal, text, marker)
    if ordinal == 1 then frame_ctx.info = {}; frame_ctx.marker = marker end
    local info = frame_ctx.info
    info[#info + 1] = text
end

-- Written once per call, after the messages (the JSON dissector writes to both columns too).
local function write_columns(pinfo)
    local cols = pinfo.cols
    cols.protocol = "LPJSON"
    local m = frame_ctx.marker
    cols.info = (m and (m .. ": ") or "") .. concat(frame_ctx.info, ", ")
end

local function add_string(item, field, tvb, span, offset, value)
    if span then
        return item:add(field, tvb(offset + span[1] - 1, span[2] - span[1] + 1), value)
    end
    return item:add(field, value)
end

-- UInt64 values for lpjson.content_length: a few lengths repeat all through a capture.
local uint64_memo, uint64_memo_size = {}, 0

local function uint64(n)
    local u = uint64_memo[n]
    if not u then
        if uint64_memo_size >= 256 then uint64_memo, uint64_memo_size = {}, 0 end
        u = UInt64(n)
        uint64_memo[n] = u
        uint64_memo_size = uint64_memo_size + 1
    end
    return u
end

-- Whether field's item is to be added. Wireshark fakes the items nobody sees, but each Lua
-- call costs the same whether it keeps the item or fakes it, so c.want says which to add:
-- nil with a shown tree (all of them); NOTHING when no filter, column or tap uses lpjson
-- (the packet list, tshark without -V); else a table filled as it goes, each field's
-- TreeItem:referenced asked once per call (a display filter, a custom column).
local NOTHING = {}

local function wants(c, field)
    local want = c.want
    if want == nil then return true end
    if want == NOTHING then return false end
    local yes = want[field]
    if yes == nil then
        yes = c.tree:referenced(field)
        want[field] = yes
    end
    return yes
end

-- Request k and response k of a conversation point at each other; the number k is taken in
-- the first pass and read back later. Kept as numbers in flat arrays, with one small table
-- per frame: a table per message made Lua's collector walk tens of thousands of them over
-- and over (about a fifth of the dissector's time on a capture of 20,000 messages).
local function link(c, ordinal, item)
    local st, number = c.st, c.number
    local in_frame = messages[number]
    local k = in_frame and in_frame[ordinal]
    if not k then
        if c.visited then return end
        if not in_frame then
            in_frame = { request = st.request, conv = st.conv }
            messages[number] = in_frame
        end
        k = st.count + 1
        st.count = k
        in_frame[ordinal] = k
        local side = st.request and st.conv.requests or st.conv.responses
        side.frame[k], side.time[k] = number, c:rel_ts()
    end
    if not item then return end -- no item: nothing of lpjson is used in this pass
    local conv = in_frame.conv
    if in_frame.request then
        if wants(c, f.request) then item:add(f.request, true):set_hidden() end
        local answer = conv.responses.frame[k]
        if answer and wants(c, f.response_in) then item:add(f.response_in, answer):set_generated() end
    else
        if wants(c, f.response) then item:add(f.response, true):set_hidden() end
        local requests = conv.requests
        local asked = requests.frame[k]
        if asked then
            if wants(c, f.request_in) then item:add(f.request_in, asked):set_generated() end
            if wants(c, f.time) then
                local delta = c:rel_ts() - requests.time[k]
                local secs = math.floor(delta)
                item:add(f.time, NSTime.new(secs, math.floor((delta - secs) * 1e9 + 0.5))):set_generated()
            end
        end
    end
end

-- Wireshark's JSON dissector on a text/json content, under parent: the content's own bytes
-- (crange) when its text is them, else the decoded text as a new data source.
local function dissect_json(c, parent, crange, decoded, own)
    local ctvb = own and crange:tvb() or ByteArray.new(decoded, true):tvb("Decoded content")
    pcall(json_dissector.call, json_dissector, ctvb, c.pinfo, parent)
end

local SHOWN_KEYS = { { "action", "action" }, { "value", "value" }, { "result", "result" }, { "error", "error" } }

-- lpjson.action, .value, .result, .error: the content's top-level keys users look for. A
-- string shows as its text, anything else as its JSON literal. coff: the content's offset
-- in tvb when text is the content's own bytes (then the fields point at them), else nil.
local function add_content_keys(c, item, value, text, coff)
    if json_type(value) ~= "obj" then return end
    local map, span, tvb = value.map, value.span, c.tvb
    for _, pair in ipairs(SHOWN_KEYS) do
        local v = map[pair[1]]
        if v ~= nil and wants(c, f[pair[2]]) then
            local s = span[pair[1]]
            local shown = type(v) == "string" and v or sub(text, s[1], s[2])
            if coff then
                item:add(f[pair[2]], tvb(coff + s[1] - 1, s[2] - s[1] + 1), shown)
            else
                item:add(f[pair[2]], shown)
            end
        end
    end
end

-- Without reassembly (or with segments missing) the stream offsets are lost: no
-- end-of-stream verdict for this direction then.
local function cut_short(c, item, ordinal, marker)
    item:add_proto_expert_info(ex_truncated)
    add_info(ordinal, "[message cut short]", marker)
    if not c.visited then c.st.lost = true end
end

-- A framing or header violation: the message is flagged, and nothing after it in this
-- direction is parsed (after_error).
local function failed(c, item, ordinal, marker, code, reason, range)
    add_violation(item, code, reason, range)
    link(c, ordinal, item)
    add_info(ordinal, "[" .. code .. "] " .. shorten(reason, 80), marker)
    if not c.visited then c.st.failed = { frame = c.number, ordinal = ordinal } end
end

-- read_content_cached hands out the same value table for a repeated content: its Info
-- line is kept with it.
local summary_memo = setmetatable({}, { __mode = "k" })

-- A whole message's last steps, with or without its item: its link, its Info line, and the
-- bytes the direction has consumed (first pass).
local function finish(c, ordinal, item, line, marker, length)
    link(c, ordinal, item)
    add_info(ordinal, line, marker)
    if not c.visited then c.st.consumed = c.st.consumed + length end
end

local function label(marker, rest)
    return "Length-prefixed JSON, " .. marker .. rest
end

-- One message at offset of c.tvb: mlen bytes of it are here (fewer than the message has
-- only when TCP cannot reassemble); hlen, info, code, reason: its header length and the
-- header's verdict when the whole header is here.
local function dissect_message(c, offset, mlen, ordinal, hlen, info, code, reason)
    local tvb, tree, st = c.tvb, c.tree, c.st
    local marker = st.request and "Request" or "Response"

    if mlen < 2 then -- only without reassembly: the prefix itself is cut
        local item = tree:add(lpjson, tvb(offset, mlen), label(marker, ", cut short"))
        item:add(f.missing, 2 - mlen):set_generated()
        return cut_short(c, item, ordinal, marker)
    end
    if hlen == 0 then
        local prange = tvb(offset, 2)
        local item = tree:add(lpjson, tvb(offset, mlen), label(marker, " [zero-header-length]"))
        item:add(f.header_length, prange, 0)
        return failed(c, item, ordinal, marker, "zero-header-length",
            "header length is 0: an empty header is not a JSON object", prange)
    end
    if mlen < 2 + hlen then
        local item = tree:add(lpjson, tvb(offset, mlen), label(marker, ", cut short"))
        item:add(f.header_length, tvb(offset, 2), hlen)
        item:add(f.missing, 2 + hlen - mlen):set_generated()
        return cut_short(c, item, ordinal, marker)
    end
    local hoff = offset + 2
    if code then
        local hrange = tvb(hoff, hlen)
        local item = tree:add(lpjson, tvb(offset, mlen), label(marker, " [" .. code .. "]"))
        item:add(f.header_length, tvb(offset, 2), hlen)
        item:add_packet_field(f.header, hrange, ENC_UTF_8)
        return failed(c, item, ordinal, marker, code, reason, hrange)
    end

    local header = info.value
    local hmap = header.map
    local ctype, encoding = hmap["content-type"], hmap["content-encoding"]
    local clen = info.length
    local complete = mlen >= 2 + hlen + clen
    local coff = hoff + hlen
    local value, text_or_code, creason, craw
    if complete and ctype == "text/json" then
        craw = clen > 0 and sub(c.raw, coff + 1, coff + clen) or ""
        value, text_or_code, creason = read_content_cached(craw, encoding)
    end
    local line, text
    if not complete then
        text = label(marker, ", cut short")
    elseif value == nil and craw then -- text/json content that is not valid
        line = summary(ctype, encoding, clen, nil)
        text = label(marker, " [" .. text_or_code .. "]: " .. line)
        line = "[" .. text_or_code .. "] " .. line
    elseif craw and type(value) == "table" then -- a repeated content is the same table
        line = summary_memo[value]
        if not line then
            line = summary(ctype, encoding, clen, value)
            summary_memo[value] = line
        end
        text = label(marker, ": " .. line)
    else
        line = summary(ctype, encoding, clen, value)
        text = label(marker, ": " .. line)
    end

    if c.want == NOTHING and complete and (craw == nil or value ~= nil) then
        -- Nothing of lpjson is used in this pass and nothing is to be flagged: no item at all,
        -- only what outlives the pass, and Wireshark's JSON subtree if a filter wants json fields.
        if craw and clen > 0 and c.json then
            dissect_json(c, tree, tvb(coff, clen), text_or_code, text_or_code == craw)
        end
        return finish(c, ordinal, nil, line, marker, 2 + hlen + clen)
    end

    -- Only the items something uses (see wants); the header's fields sit under the message
    -- item when the header item is not added, as they would under a faked one.
    local item = tree:add(lpjson, tvb(offset, mlen), text)
    if wants(c, f.header_length) then item:add(f.header_length, tvb(offset, 2), hlen) end
    local hitem = item
    if wants(c, f.header) then
        -- a valid header is strict UTF-8 without NUL: its text is its bytes (cheaper than
        -- add_packet_field, which decodes them again)
        hitem = item:add(f.header, tvb(hoff, hlen), sub(c.raw, hoff + 1, hoff + hlen))
    end
    local hspan = header.span
    if wants(c, f.byteorder) then add_string(hitem, f.byteorder, tvb, hspan["byteorder"], hoff, hmap["byteorder"]) end
    if wants(c, f.content_type) then add_string(hitem, f.content_type, tvb, hspan["content-type"], hoff, ctype) end
    if wants(c, f.content_encoding) then
        add_string(hitem, f.content_encoding, tvb, hspan["content-encoding"], hoff, encoding)
    end
    if wants(c, f.content_length) then
        local span = hspan["content-length"]
        hitem:add(f.content_length, tvb(hoff + span[1] - 1, span[2] - span[1] + 1), uint64(clen))
    end
    if #header.keys > 4 and wants(c, f.extension) then
        local hraw = sub(c.raw, hoff + 1, hoff + hlen)
        for _, key in ipairs(header.keys) do
            if key ~= "byteorder" and key ~= "content-type" and key ~= "content-encoding" and key ~= "content-length" then
                local ks = hspan[key]
                add_string(hitem, f.extension, tvb, ks, hoff, key .. ": " .. sub(hraw, ks[1], ks[2]))
            end
        end
    end
    if not complete then
        item:add(f.missing, 2 + hlen + clen - mlen):set_generated()
        return cut_short(c, item, ordinal, marker)
    end

    if craw == nil then
        if wants(c, f.content) then item:add(f.content, tvb(coff, clen)) end
    elseif value == nil then
        local crange = tvb(coff, clen)
        item:add(f.content, crange)
        add_violation(item, text_or_code, creason, clen > 0 and crange or nil)
    else
        -- valid JSON content shows as its JSON subtree only (or, with the JSON subtree
        -- preference off, as its text); the bytes stay filterable
        local decoded = text_or_code
        local own = decoded == craw
        local json = clen > 0 and c.json
        local content, text_item = wants(c, f.content), (not own or not c.subtree) and wants(c, f.text)
        local crange = (content or text_item or json) and tvb(coff, clen)
        if content then item:add(f.content, crange):set_hidden() end
        add_content_keys(c, item, value, decoded, own and coff or nil)
        if text_item then item:add(f.text, crange, decoded) end
        if json then dissect_json(c, item, crange, decoded, own) end
    end
    return finish(c, ordinal, item, line, marker, 2 + hlen + clen)
end

-- A gap in the TCP stream (a segment missing, or one arriving out of order while TCP does
-- not reassemble out-of-order segments) loses the message boundaries: from there on the
-- direction is lost data, shown but not parsed, with no end-of-stream verdict.
local function dissect_gap(tvb, pinfo, tree, st)
    local len = tvb:len()
    local item = tree:add(lpjson, tvb(), "Length-prefixed JSON, " .. len .. " bytes after a gap in the TCP stream (not parsed)")
    item:add(f.gap, tvb())
    item:add_proto_expert_info(ex_gap)
    pinfo.cols.protocol = "LPJSON"
    pinfo.cols.info = (st.request and "Request" or "Response") .. ": [" .. len .. " bytes after a gap in the TCP stream]"
    return len
end

local function dissect_after_error(c, offset, len, ordinal)
    local range = c.tvb(offset, len)
    local item = c.tree:add(lpjson, range, "Length-prefixed JSON, " .. len .. " bytes after a protocol error (not parsed)")
    item:add(f.unparsed, range)
    item:add_proto_expert_info(ex_after_error)
    add_info(ordinal, "[" .. len .. " bytes after a protocol error]", c.st.request and "Request" or "Response")
end

-- How long the message at offset is (plen), as far as its bytes tell, with its header
-- length and the header's verdict when the whole header is there; or nil and how many more
-- bytes TCP is to bring first (when it can).
local function measure(c, offset, avail, can_desegment)
    if avail < 2 then
        if can_desegment then return nil, DESEGMENT_ONE_MORE_SEGMENT end
        return 2
    end
    local raw, st = c.raw, c.st
    local hlen = byte(raw, offset + 1) * 256 + byte(raw, offset + 2)
    if hlen == 0 then return 2, 0 end
    if avail < 2 + hlen then
        if not c.visited then st.need = 2 + hlen end
        if can_desegment then return nil, DESEGMENT_ONE_MORE_SEGMENT end
        return avail, hlen
    end
    local info, code, reason = check_header_cached(sub(raw, offset + 3, offset + 2 + hlen), c.limit)
    if code then return 2 + hlen, hlen, info, code, reason end
    local plen = 2 + hlen + info.length
    if not c.visited then st.need = plen end
    if plen > avail and can_desegment then return nil, plen - avail end
    return plen, hlen, info
end

-- lpjson's own dissector handle (TreeItem:referenced takes a field or a handle, and the handle
-- exists once lpjson.dissector is set, at the end of this file).
local own_handle
local function lpjson_handle()
    own_handle = own_handle or Dissector.get("lpjson")
    return own_handle
end

-- One call's context (c): the Tvb, its bytes, the direction's state. pinfo.rel_ts is read
-- at most once per call (every message of a frame has the frame's time).
local Call = {}
Call.__index = Call

function Call:rel_ts()
    local ts = self.ts
    if not ts then
        ts = self.pinfo.rel_ts
        self.ts = ts
    end
    return ts
end

local function dissect_stream(tvb, pinfo, tree)
    local st = direction_state(pinfo) -- even a stream that never completes a prefix has an end-of-stream verdict
    local number, visited = pinfo.number, pinfo.visited
    if st.gap and number >= st.gap then return dissect_gap(tvb, pinfo, tree, st) end
    if not visited and f_tcp_lost_segment() then
        st.gap, st.lost = number, true
        return dissect_gap(tvb, pinfo, tree, st)
    end
    if frame_ctx.number ~= number then
        frame_ctx.number = number
        frame_ctx.ordinal = 0
    end
    local raw = tvb:raw()
    local total = #raw
    local subtree = lpjson.prefs.json_subtree
    local c = setmetatable({ tvb = tvb, pinfo = pinfo, tree = tree, st = st, number = number, visited = visited,
        raw = raw, limit = lpjson.prefs.max_content_length, subtree = subtree,
        -- a shown tree, or a filter, column or tap that uses lpjson (or json) fields
        json = subtree and json_dissector ~= nil and tree:referenced(json_dissector) }, Call)
    if not tree:referenced(lpjson_handle()) then -- no tree shown, and no filter, column or tap uses lpjson
        c.want = NOTHING
    elseif not tree.visible then
        c.want = {}
    end
    local shown = false
    if pinfo.can_desegment > 0 then
        local offset = 0
        while offset < total do
            local avail = total - offset
            local ordinal = frame_ctx.ordinal + 1
            frame_ctx.ordinal = ordinal
            if after_error(st, number, ordinal) then
                dissect_after_error(c, offset, avail, ordinal)
                shown = true
                break
            end
            local plen, hlen, info, code, reason = measure(c, offset, avail, true)
            if plen == nil then
                frame_ctx.ordinal = ordinal - 1
                pinfo.desegment_offset, pinfo.desegment_len = offset, hlen
                break
            end
            dissect_message(c, offset, plen < avail and plen or avail, ordinal, hlen, info, code, reason)
            shown = true
            offset = offset + plen
        end
    else
        -- Without reassembly a message may run into later segments: tcp_dissect_pdus tells
        -- TCP where the next one starts (TCP then skips the continuation), which Lua cannot.
        -- Its callbacks come in pairs: the length of the message at offset, then the message.
        local at, plen, hlen, info, code, reason
        dissect_tcp_pdus(tvb, tree, 2, function(_, _, offset)
            at = offset
            local avail = total - offset
            if after_error(st, number, frame_ctx.ordinal + 1) then
                plen, hlen = avail, nil
                return avail
            end
            plen, hlen, info, code, reason = measure(c, offset, avail, false)
            return plen
        end, function(pdu)
            local ordinal = frame_ctx.ordinal + 1
            frame_ctx.ordinal = ordinal
            if after_error(st, number, ordinal) then
                dissect_after_error(c, at, pdu:len(), ordinal)
            else
                dissect_message(c, at, pdu:len(), ordinal, hlen, info, code, reason)
            end
            shown = true
            return pdu:len()
        end)
    end
    if shown then write_columns(pinfo) end
    return total
end

---------------------------------------------------------------------------------------
-- Heuristic for other ports: a plausible prefix, then (after JSON whitespace) '{'; when
-- the whole header is in the segment it must be a valid lpjson header.
---------------------------------------------------------------------------------------

local function heuristic(tvb, pinfo, tree)
    local len = tvb:len()
    if len < 3 then return false end
    local hlen = tvb(0, 2):uint()
    if hlen < 2 then return false end
    local visible = math.min(hlen, len - 2)
    local head = tvb(2, visible):raw()
    local first = find(head, "[^ \t\n\r]")
    if not first or byte(head, first) ~= 123 then return false end
    if visible == hlen then
        local info, code = check_header(head, 0xFFFFFFFF)
        if info == nil or code then return false end
    else
        local key = find(head, "[^ \t\n\r]", first + 1)
        if key and byte(head, key) ~= 34 then return false end
    end
    pinfo.conversation = lpjson
    dissect_stream(tvb, pinfo, tree)
    return true
end

lpjson:register_heuristic("tcp", heuristic)

---------------------------------------------------------------------------------------
-- Every frame, after the other dissectors (lpjson is its own postdissector, so that the
-- check is no second protocol): the SYN names the client of a conversation, and a FIN
-- while a message is incomplete is the codec's IncompleteMessage (docs/PROTOCOL.md#f4).
---------------------------------------------------------------------------------------

local function postdissect(pinfo, tree)
    frame_ctx.number = -1 -- the next dissection of any frame starts counting messages afresh
    local report = eos_reports[pinfo.number]
    if report == nil then
        -- The FIN comes after every byte of its direction, so the state is final here, in
        -- whichever pass the TCP fields are first available (they are not in a pass without a tree).
        -- (field extractors are Lua-to-C calls: the sequence number only on a FIN, the ACK
        -- flag only on a SYN)
        local fin = last_value(f_tcp_fin)
        if fin == nil then return end
        report = false
        if not pinfo.visited and last_value(f_tcp_syn) and not last_value(f_tcp_ack) then
            local conv = conversation(pinfo)
            conv.client = conv.client or endpoint(pinfo.src, pinfo.src_port)
        end
        local seq = fin and last_value(f_tcp_seq)
        local st = seq and streams[direction_key(pinfo)]
        if st and not st.failed and not st.lost then
            local received = seq - 1 - st.consumed
            if received > 0 then
                local expected = received < 2 and 2 or st.need
                report = { received = received, expected = expected, offset = st.consumed }
            end
        end
        eos_reports[pinfo.number] = report
    end
    if report then
        local reason = "stream ended inside a message: it needs " .. report.expected .. " bytes, " ..
            report.received .. " came (message at stream offset " .. report.offset .. ")"
        local item = tree:add(lpjson, "Length-prefixed JSON, incomplete message [incomplete-message]")
        add_violation(item, "incomplete-message", reason)
        item:add(f.missing, report.expected - report.received):set_generated()
        pinfo.cols.info:append(" [LPJSON incomplete-message: " .. report.received .. " of " ..
            report.expected .. " bytes]")
    end
end

-- Called from the TCP port table, or as the postdissector with the whole frame (the only
-- call whose Tvb starts the frame with nothing to desegment: TCP's payload is a part of
-- the frame, and a reassembled PDU comes with desegmentation allowed).
function lpjson.dissector(tvb, pinfo, tree)
    if tvb:offset() == 0 and tvb:len() == pinfo.caplen and pinfo.can_desegment == 0 then
        postdissect(pinfo, tree)
        return 0
    end
    return dissect_stream(tvb, pinfo, tree)
end

register_postdissector(lpjson)

---------------------------------------------------------------------------------------
-- Registration and preferences
---------------------------------------------------------------------------------------

local tcp_port = DissectorTable.get("tcp.port")
local registered_port = DEFAULT_PORT
tcp_port:add(registered_port, lpjson)

function lpjson.prefs_changed()
    if lpjson.prefs.port ~= registered_port then
        if registered_port ~= 0 then tcp_port:remove(registered_port, lpjson) end
        registered_port = lpjson.prefs.port
        if registered_port ~= 0 then tcp_port:add(registered_port, lpjson) end
    end
end
