//! Operating the server safely: what keeps its own output from becoming an attack surface.
//! [`log_limit`]: repeated events logged with rate limiting (and counted in metrics).

pub mod log_limit;
