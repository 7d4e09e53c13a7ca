-- rust-grpc-proxy's companion filter for the Wasm build (see README,
-- "Requests without a body"). A Wasm filter cannot give a request without a
-- body a body, so for a transcoded GET (DELETE, ...) rust_grpc_proxy.wasm
-- rewrites the headers into the gRPC call and hands its gRPC frame over in the
-- x-rust-grpc-proxy-frame header (hex). This filter, placed right after the
-- Wasm filter and scoped like it, moves that frame into the body, so the
-- request goes through the router like a POST: route timeouts, retries,
-- weighted clusters, router stats and access logs apply.
--
-- The Wasm filter removes any x-rust-grpc-proxy-frame a client sends, so only
-- its own marker reaches this script; requests without the marker are not
-- touched (no body is added, nothing is buffered).

-- Each byte's two lower-case hex digits (as the Wasm filter writes them) to
-- the byte, built once per Lua state: gsub with a table looks each pair up in
-- C, where a function would be a Lua call per byte.
local BYTES = {}
for byte = 0, 255 do
  BYTES[string.format("%02x", byte)] = string.char(byte)
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local hex = headers:get("x-rust-grpc-proxy-frame")
  if hex == nil then
    return
  end
  headers:remove("x-rust-grpc-proxy-frame")
  local frame = hex:gsub("%x%x", BYTES)
  handle:body(true):setBytes(frame)
  -- setBytes adds a content-length; a gRPC request carries none (native
  -- transcoder's and the filter's own POSTs do not), so the backend sees the same.
  headers:remove("content-length")
end
