//! WebSocket (RFC 6455) handshake and framing for SIP over WS (RFC 7118) (filled in next).
