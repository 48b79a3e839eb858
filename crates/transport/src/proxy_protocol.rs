//! PROXY protocol v1/v2 (filled in next).
