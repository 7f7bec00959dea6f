-- wrk script for bench/webhook_bench.sh: POST the AdmissionReview in $BODY_FILE (GET when it is
-- empty). With $RATE > 0 requests leave on a fixed schedule, RATE / $THREADS per second per wrk
-- thread, so the offered rate holds whatever the latency is (hey -q and a plain wrk delay
-- both slow down when the server does).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } timespec_t;
int clock_gettime(int clk_id, timespec_t *tp);
]]
local ts = ffi.new("timespec_t")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local body_file = os.getenv("BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
local rate = tonumber(os.getenv("RATE") or "0")
-- One Lua state per wrk thread, shared by its connections: each thread sends RATE/THREADS.
local threads = tonumber(os.getenv("THREADS") or "1")
local interval = rate > 0 and 1000 * threads / rate or 0
local next_due = nil

function delay()
  if interval == 0 then return 0 end
  local now = now_ms()
  if next_due == nil then next_due = now + math.random() * interval end
  local wait = next_due - now
  next_due = next_due + interval
  if wait < 0 then return 0 end
  return math.floor(wait)
end
