-- RTSP Digest authentication (RFC 7616 MD5) with API tokens: username = the
-- token's prefix, password = the token. Only a SHA-256 of a token is kept, so
-- the Digest HA1 = MD5(prefix:camgate:token) is stored beside it when a token
-- is created (tokens are 256-bit random, so an MD5 of one reveals nothing
-- usable). Tokens created before this migration have none and work with
-- Basic (or ?token=) only.
ALTER TABLE api_tokens ADD COLUMN digest_ha1 TEXT;
CREATE INDEX api_tokens_prefix ON api_tokens (prefix);
