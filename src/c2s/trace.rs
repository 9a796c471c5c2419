//! Per-session traffic tracing, switched on by an administrator (ad-hoc command): every
//! stanza the session reads or writes is logged at info level with target "xmpp_trace".

#[derive(Default)]
pub struct TraceTraffic(pub std::sync::atomic::AtomicBool);

impl TraceTraffic {
    pub fn on(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
