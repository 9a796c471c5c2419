//! Operating the server safely: what keeps its own output from becoming an attack surface.
//! [`log_limit`]: repeated events logged with rate limiting (and counted in metrics);
//! [`fuzz`]: the parsers a client or an import file reaches, as byte-in entry points.

pub mod fuzz;
pub mod log_limit;
