package lease

import (
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Keys are a camera's lease keys. Both share the hash slot of the camera's
// stream, so that one script may read them and write the stream in a Redis
// Cluster.
type Keys struct {
	// Lease holds "<owner> <epoch>" and expires unless renewed.
	Lease string
	// Epoch holds "<epoch> <owner> held|released": the camera's newest
	// epoch and what its owner did with it. It does not expire, so that an
	// epoch is never handed out twice.
	Epoch string
}

// KeysFor returns the lease keys of the camera whose stream is stream,
// under prefix (fleet.key).
func KeysFor(prefix, stream string) Keys {
	tag := "{" + HashTag(stream) + "}"
	return Keys{Lease: prefix + ":lease:" + tag, Epoch: prefix + ":epoch:" + tag}
}

// HashTag is the part of key that Redis Cluster hashes: the text between
// the first '{' and the next '}' when it is not empty, else the whole key.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Token is the value of a held lease: the owner and the epoch.
func Token(owner string, epoch uint64) string {
	return owner + " " + strconv.FormatUint(epoch, 10)
}

// FencedPrefix starts the error reply of a write refused for want of the
// lease.
const FencedPrefix = "FENCED"

// IsFenced reports whether err is Redis refusing a write because the
// writer no longer holds the camera's lease.
func IsFenced(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(err.Error(), FencedPrefix)
}

// holds is the lease check every script runs: whether token holds the
// lease, renewing it for ms. A lease that is gone (expired while its owner
// was cut off, or lost with Redis's data) is taken back only when nobody
// acquired the camera since: the epoch record still names this owner and
// epoch as held, or is gone too. Any other owner's acquisition raised the
// epoch and changed the record, so it can never be undone here.
//
// KEYS[1] lease, KEYS[2] epoch record; ARGV[1] token, ARGV[2] owner,
// ARGV[3] epoch, ARGV[4] ms.
const holds = `
local function holds()
  local cur = redis.call('GET', KEYS[1])
  if cur == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return 1
  end
  if cur then return 0 end
  local rec = redis.call('GET', KEYS[2])
  if rec and rec ~= (ARGV[3] .. ' ' .. ARGV[2] .. ' held') then return 0 end
  if not rec then redis.call('SET', KEYS[2], ARGV[3] .. ' ' .. ARGV[2] .. ' held') end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
  return 2
end
`

// FencedXAdd is the source of the script that adds a frame to its stream
// only while the writer holds the camera's lease (sent with EVAL: the
// publisher builds its arguments without allocating).
//
// KEYS[1] lease, KEYS[2] epoch record, KEYS[3] stream; ARGV[1..4] as
// holds, ARGV[5] MAXLEN (0 = none), ARGV[6...] the entry's fields and
// values. It answers the entry id, or an error starting with FencedPrefix.
const FencedXAdd = holds + `
if holds() == 0 then
  return redis.error_reply('` + FencedPrefix + ` ' .. ARGV[2] .. ' epoch ' .. ARGV[3] .. ' does not hold the lease of ' .. KEYS[3])
end
if ARGV[5] ~= '0' then
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
end
return redis.call('XADD', KEYS[3], '*', unpack(ARGV, 6))
`

// Renew renews a held lease for ms, or takes back one that is gone (see
// holds). KEYS and ARGV as holds. It answers 1 (renewed), 2 (taken back)
// or 0 (lost: another owner holds or held it since).
var Renew = redis.NewScript(holds + `
return holds()
`)

// Acquire takes a camera's lease when it is free, with a new epoch.
//
// KEYS[1] lease, KEYS[2] epoch record, KEYS[3] stream; ARGV[1] owner,
// ARGV[2] ms. It answers {1, epoch, reason} when it took the lease, reason
// being how it was free: "new" (no record), "released" (its owner gave it
// up) or "expired" (its owner's lease ran out); or {0, holder token, pttl
// ms} when another replica holds it. A lease held under this owner's own
// name (a process of the same replica id that died) is taken over with a
// new epoch too, so that two processes given one id fence each other
// rather than both writing.
//
// Without a record (Redis lost it), the epoch continues from the newest
// entry of the stream, so that an epoch a consumer has seen is never
// handed out again while the stream holds it.
var Acquire = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1] + 1) ~= (ARGV[1] .. ' ') then
  return {0, cur, redis.call('PTTL', KEYS[1])}
end
local e, reason = 0, 'new'
local rec = redis.call('GET', KEYS[2])
if rec then
  local ep, st = string.match(rec, '^(%d+) %S+ (%S+)$')
  e = tonumber(ep) or 0
  if st == 'released' then reason = 'released' else reason = 'expired' end
else
  local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  if last[1] then
    local f = last[1][2]
    for i = 1, #f - 1, 2 do
      if f[i] == 'epoch' then e = tonumber(f[i + 1]) or 0 end
    end
  end
end
e = e + 1
redis.call('SET', KEYS[2], e .. ' ' .. ARGV[1] .. ' held')
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. e, 'PX', ARGV[2])
return {1, e, reason}
`)

// Release gives a held lease up and records that it was released, so the
// next owner counts a release rather than an expiry. KEYS as holds;
// ARGV[1] token, ARGV[2] owner, ARGV[3] epoch. It answers 1, or 0 when
// the token did not hold the lease.
var Release = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[3] .. ' ' .. ARGV[2] .. ' released')
return 1
`)

// Heartbeat records a replica as alive and answers the live ones.
//
// KEYS[1] the replicas hash; ARGV[1] replica id, ARGV[2] its payload
// (JSON), ARGV[3] liveness in ms, ARGV[4] "leave" to remove the replica
// instead. The hash's values are "<Redis time, unix ms> <payload>"; a
// replica not heard from within the liveness is removed. Redis's clock,
// not the replicas', decides, so replicas whose clocks disagree still
// agree on who is alive. It answers {now ms, id1, value1, id2, value2...}.
var Heartbeat = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[4] == 'leave' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], now .. ' ' .. ARGV[2])
end
local all = redis.call('HGETALL', KEYS[1])
local out = {now}
for i = 1, #all - 1, 2 do
  local ts = tonumber(string.match(all[i + 1], '^(%d+) '))
  if ts == nil or now - ts > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 10)
return out
`)
