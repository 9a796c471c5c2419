//! The presence subscription state machine of RFC 6121 §3 and Appendix A, as pure functions.
//!
//! A roster entry is in one of the nine states of Appendix A (`State`), plus the `approved`
//! flag of subscription pre-approval (§3.4). [`outbound_table`] and [`inbound_table`] are the
//! tables of Appendix A.2 and A.3, cell for cell; [`outbound`] and [`inbound`] add the
//! pre-approval rules of §3.4 on top. Nothing here does I/O: the module applies the outcome
//! (storage, roster pushes, routing, delivery).

/// The `subscription` attribute of a roster item (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sub {
    None,
    To,
    From,
    Both,
}

impl Sub {
    pub fn as_str(self) -> &'static str {
        match self {
            Sub::None => "none",
            Sub::To => "to",
            Sub::From => "from",
            Sub::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Sub> {
        match s {
            "none" => Some(Sub::None),
            "to" => Some(Sub::To),
            "from" => Some(Sub::From),
            "both" => Some(Sub::Both),
            _ => None,
        }
    }

    /// The user is subscribed to the contact's presence.
    pub fn has_to(self) -> bool {
        matches!(self, Sub::To | Sub::Both)
    }

    /// The contact is subscribed to the user's presence.
    pub fn has_from(self) -> bool {
        matches!(self, Sub::From | Sub::Both)
    }

    fn from_parts(to: bool, from: bool) -> Sub {
        match (to, from) {
            (false, false) => Sub::None,
            (true, false) => Sub::To,
            (false, true) => Sub::From,
            (true, true) => Sub::Both,
        }
    }
}

/// The nine subscription states of RFC 6121 Appendix A.1, from the user's point of view.
/// "Pending Out": the user asked the contact (`ask='subscribe'`); "Pending In": the contact
/// asked the user and is waiting for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    None,
    NonePendingOut,
    NonePendingIn,
    NonePendingOutIn,
    To,
    ToPendingIn,
    From,
    FromPendingOut,
    Both,
}

impl State {
    pub const ALL: [State; 9] = [
        State::None,
        State::NonePendingOut,
        State::NonePendingIn,
        State::NonePendingOutIn,
        State::To,
        State::ToPendingIn,
        State::From,
        State::FromPendingOut,
        State::Both,
    ];

    /// Builds a state from its parts. A pending-out flag beside a 'to' subscription, or a
    /// pending-in request beside 'from', means nothing and is dropped.
    pub fn from_parts(sub: Sub, pending_out: bool, pending_in: bool) -> State {
        let pending_out = pending_out && !sub.has_to();
        let pending_in = pending_in && !sub.has_from();
        match (sub, pending_out, pending_in) {
            (Sub::None, false, false) => State::None,
            (Sub::None, true, false) => State::NonePendingOut,
            (Sub::None, false, true) => State::NonePendingIn,
            (Sub::None, true, true) => State::NonePendingOutIn,
            (Sub::To, _, false) => State::To,
            (Sub::To, _, true) => State::ToPendingIn,
            (Sub::From, false, _) => State::From,
            (Sub::From, true, _) => State::FromPendingOut,
            (Sub::Both, _, _) => State::Both,
        }
    }

    pub fn sub(self) -> Sub {
        match self {
            State::None | State::NonePendingOut | State::NonePendingIn | State::NonePendingOutIn => Sub::None,
            State::To | State::ToPendingIn => Sub::To,
            State::From | State::FromPendingOut => Sub::From,
            State::Both => Sub::Both,
        }
    }

    pub fn pending_out(self) -> bool {
        matches!(
            self,
            State::NonePendingOut | State::NonePendingOutIn | State::FromPendingOut
        )
    }

    pub fn pending_in(self) -> bool {
        matches!(
            self,
            State::NonePendingIn | State::NonePendingOutIn | State::ToPendingIn
        )
    }

    fn with(self, to: bool, from: bool, pending_out: bool, pending_in: bool) -> State {
        State::from_parts(Sub::from_parts(to, from), pending_out, pending_in)
    }
}

/// The four subscription-related presence types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl Kind {
    pub fn parse(presence_type: &str) -> Option<Kind> {
        match presence_type {
            "subscribe" => Some(Kind::Subscribe),
            "subscribed" => Some(Kind::Subscribed),
            "unsubscribe" => Some(Kind::Unsubscribe),
            "unsubscribed" => Some(Kind::Unsubscribed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Unsubscribed => "unsubscribed",
        }
    }
}

/// One cell of Appendix A: whether the stanza travels on (routed for outbound stanzas,
/// delivered to the user for inbound ones), the new state, and the automatic reply the server
/// sends on the user's behalf (the footnoted cells of A.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub forward: bool,
    pub next: State,
    pub reply: Option<Kind>,
}

const fn cell(forward: bool, next: State) -> Cell {
    Cell {
        forward,
        next,
        reply: None,
    }
}

/// RFC 6121 Appendix A.2: the user sends `kind` to the contact.
pub fn outbound_table(state: State, kind: Kind) -> Cell {
    use State::*;
    let (to, from, out, inn) = (
        state.sub().has_to(),
        state.sub().has_from(),
        state.pending_out(),
        state.pending_in(),
    );
    match kind {
        // A.2.1: always routed; asking again changes nothing once pending or subscribed.
        Kind::Subscribe => cell(
            true,
            if to {
                state
            } else {
                state.with(to, from, true, inn)
            },
        ),
        // A.2.2: always routed; the 'to' half and any pending-out request end.
        Kind::Unsubscribe => cell(true, state.with(false, from, false, inn)),
        // A.2.3: only an answer to a pending request travels and grants 'from'.
        Kind::Subscribed => match state {
            NonePendingIn | NonePendingOutIn | ToPendingIn => cell(true, state.with(to, true, out, false)),
            _ => cell(false, state),
        },
        // A.2.4: cancels 'from' or denies a pending request; otherwise nothing to say.
        Kind::Unsubscribed => {
            if from || inn {
                cell(true, state.with(to, false, out, false))
            } else {
                cell(false, state)
            }
        }
    }
}

/// RFC 6121 Appendix A.3: the contact's `kind` arrives for the user.
pub fn inbound_table(state: State, kind: Kind) -> Cell {
    let (to, from, out, inn) = (
        state.sub().has_to(),
        state.sub().has_from(),
        state.pending_out(),
        state.pending_in(),
    );
    match kind {
        // A.3.1: a new request is delivered and remembered; a repeated one is not delivered;
        // when the contact already has 'from', the server answers "subscribed" itself.
        Kind::Subscribe => {
            if from {
                Cell {
                    forward: false,
                    next: state,
                    reply: Some(Kind::Subscribed),
                }
            } else if inn {
                cell(false, state)
            } else {
                cell(true, state.with(to, from, out, true))
            }
        }
        // A.3.2: ends 'from' or withdraws a pending request.
        Kind::Unsubscribe => {
            if from || inn {
                cell(true, state.with(to, false, out, false))
            } else {
                cell(false, state)
            }
        }
        // A.3.3: only an answer to the user's pending request counts.
        Kind::Subscribed => {
            if out {
                cell(true, state.with(true, from, false, inn))
            } else {
                cell(false, state)
            }
        }
        // A.3.4: ends 'to' or denies the user's pending request.
        Kind::Unsubscribed => {
            if to || out {
                cell(true, state.with(false, from, false, inn))
            } else {
                cell(false, state)
            }
        }
    }
}

/// A roster entry as the state machine sees it: Appendix A state plus §3.4 pre-approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub state: State,
    pub approved: bool,
}

impl Entry {
    pub const NONE: Entry = Entry {
        state: State::None,
        approved: false,
    };
}

/// What processing one stanza does to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub next: Entry,
    /// Route (outbound) or deliver (inbound) the stanza.
    pub forward: bool,
    /// A stanza the server sends back on the user's behalf (inbound only).
    pub reply: Option<Kind>,
}

/// A.2 with §3.4: the user sends `kind` to the contact.
pub fn outbound(entry: Entry, kind: Kind) -> Outcome {
    let state = entry.state;
    let mut approved = entry.approved;
    match kind {
        // §3.4.1: "subscribed" without a pending request pre-approves a future one, unless
        // the contact already has 'from'. It is not routed.
        Kind::Subscribed if !state.pending_in() && !state.sub().has_from() => approved = true,
        // §3.4 / §3.2.2: "unsubscribed" withdraws a pre-approval.
        Kind::Unsubscribed => approved = false,
        _ => {}
    }
    let c = outbound_table(state, kind);
    Outcome {
        next: Entry {
            state: c.next,
            approved: approved && !c.next.sub().has_from(),
        },
        forward: c.forward,
        reply: None,
    }
}

/// A.3 with §3.4: the contact's `kind` arrives for the user.
pub fn inbound(entry: Entry, kind: Kind) -> Outcome {
    let state = entry.state;
    if kind == Kind::Subscribe && entry.approved && !state.sub().has_from() {
        // §3.4.2: pre-approved: answer "subscribed" for the user, grant 'from', do not
        // deliver the request.
        let next = State::from_parts(
            Sub::from_parts(state.sub().has_to(), true),
            state.pending_out(),
            false,
        );
        return Outcome {
            next: Entry {
                state: next,
                approved: false,
            },
            forward: false,
            reply: Some(Kind::Subscribed),
        };
    }
    let c = inbound_table(state, kind);
    Outcome {
        next: Entry {
            state: c.next,
            approved: entry.approved && !c.next.sub().has_from(),
        },
        forward: c.forward,
        reply: c.reply,
    }
}

#[cfg(test)]
mod tests {
    use super::Kind::*;
    use super::State::*;
    use super::*;

    /// Checks every row of one Appendix A table: (existing state, forward?, new state).
    fn check(table: fn(State, Kind) -> Cell, kind: Kind, rows: [(State, bool, State); 9]) {
        for (state, forward, next) in rows {
            let c = table(state, kind);
            assert_eq!(
                (c.forward, c.next),
                (forward, next),
                "{kind:?} in state {state:?}"
            );
        }
        // The rows cover every state.
        for state in State::ALL {
            assert!(
                rows.iter().any(|r| r.0 == state),
                "{kind:?}: no row for {state:?}"
            );
        }
    }

    // A.2.1 Outbound "subscribe".
    #[test]
    fn appendix_a_2_1_outbound_subscribe() {
        check(
            outbound_table,
            Subscribe,
            [
                (None, true, NonePendingOut),
                (NonePendingOut, true, NonePendingOut),
                (NonePendingIn, true, NonePendingOutIn),
                (NonePendingOutIn, true, NonePendingOutIn),
                (To, true, To),
                (ToPendingIn, true, ToPendingIn),
                (From, true, FromPendingOut),
                (FromPendingOut, true, FromPendingOut),
                (Both, true, Both),
            ],
        );
    }

    // A.2.2 Outbound "unsubscribe".
    #[test]
    fn appendix_a_2_2_outbound_unsubscribe() {
        check(
            outbound_table,
            Unsubscribe,
            [
                (None, true, None),
                (NonePendingOut, true, None),
                (NonePendingIn, true, NonePendingIn),
                (NonePendingOutIn, true, NonePendingIn),
                (To, true, None),
                (ToPendingIn, true, NonePendingIn),
                (From, true, From),
                (FromPendingOut, true, From),
                (Both, true, From),
            ],
        );
    }

    // A.2.3 Outbound "subscribed".
    #[test]
    fn appendix_a_2_3_outbound_subscribed() {
        check(
            outbound_table,
            Subscribed,
            [
                (None, false, None),
                (NonePendingOut, false, NonePendingOut),
                (NonePendingIn, true, From),
                (NonePendingOutIn, true, FromPendingOut),
                (To, false, To),
                (ToPendingIn, true, Both),
                (From, false, From),
                (FromPendingOut, false, FromPendingOut),
                (Both, false, Both),
            ],
        );
    }

    // A.2.4 Outbound "unsubscribed".
    #[test]
    fn appendix_a_2_4_outbound_unsubscribed() {
        check(
            outbound_table,
            Unsubscribed,
            [
                (None, false, None),
                (NonePendingOut, false, NonePendingOut),
                (NonePendingIn, true, None),
                (NonePendingOutIn, true, NonePendingOut),
                (To, false, To),
                (ToPendingIn, true, To),
                (From, true, None),
                (FromPendingOut, true, NonePendingOut),
                (Both, true, To),
            ],
        );
    }

    // A.3.1 Inbound "subscribe" (the starred cells are answered "subscribed").
    #[test]
    fn appendix_a_3_1_inbound_subscribe() {
        check(
            inbound_table,
            Subscribe,
            [
                (None, true, NonePendingIn),
                (NonePendingOut, true, NonePendingOutIn),
                (NonePendingIn, false, NonePendingIn),
                (NonePendingOutIn, false, NonePendingOutIn),
                (To, true, ToPendingIn),
                (ToPendingIn, false, ToPendingIn),
                (From, false, From),
                (FromPendingOut, false, FromPendingOut),
                (Both, false, Both),
            ],
        );
        for state in State::ALL {
            let expected = state.sub().has_from().then_some(Subscribed);
            assert_eq!(inbound_table(state, Subscribe).reply, expected, "{state:?}");
        }
    }

    // A.3.2 Inbound "unsubscribe".
    #[test]
    fn appendix_a_3_2_inbound_unsubscribe() {
        check(
            inbound_table,
            Unsubscribe,
            [
                (None, false, None),
                (NonePendingOut, false, NonePendingOut),
                (NonePendingIn, true, None),
                (NonePendingOutIn, true, NonePendingOut),
                (To, false, To),
                (ToPendingIn, true, To),
                (From, true, None),
                (FromPendingOut, true, NonePendingOut),
                (Both, true, To),
            ],
        );
    }

    // A.3.3 Inbound "subscribed".
    #[test]
    fn appendix_a_3_3_inbound_subscribed() {
        check(
            inbound_table,
            Subscribed,
            [
                (None, false, None),
                (NonePendingOut, true, To),
                (NonePendingIn, false, NonePendingIn),
                (NonePendingOutIn, true, ToPendingIn),
                (To, false, To),
                (ToPendingIn, false, ToPendingIn),
                (From, false, From),
                (FromPendingOut, true, Both),
                (Both, false, Both),
            ],
        );
    }

    // A.3.4 Inbound "unsubscribed".
    #[test]
    fn appendix_a_3_4_inbound_unsubscribed() {
        check(
            inbound_table,
            Unsubscribed,
            [
                (None, false, None),
                (NonePendingOut, true, None),
                (NonePendingIn, false, NonePendingIn),
                (NonePendingOutIn, true, NonePendingIn),
                (To, true, None),
                (ToPendingIn, true, NonePendingIn),
                (From, false, From),
                (FromPendingOut, true, From),
                (Both, true, From),
            ],
        );
    }

    #[test]
    fn only_subscribe_is_ever_answered_automatically() {
        for state in State::ALL {
            for kind in [Subscribed, Unsubscribe, Unsubscribed] {
                assert_eq!(inbound_table(state, kind).reply, Option::None);
            }
            for kind in [Subscribe, Subscribed, Unsubscribe, Unsubscribed] {
                assert_eq!(outbound_table(state, kind).reply, Option::None);
            }
        }
    }

    #[test]
    fn parts_round_trip() {
        for state in State::ALL {
            assert_eq!(
                State::from_parts(state.sub(), state.pending_out(), state.pending_in()),
                state
            );
        }
        // Meaningless combinations collapse.
        assert_eq!(State::from_parts(Sub::Both, true, true), Both);
        assert_eq!(State::from_parts(Sub::To, true, false), To);
        assert_eq!(State::from_parts(Sub::From, false, true), From);
        for s in ["none", "to", "from", "both"] {
            assert_eq!(Sub::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Sub::parse("remove"), Option::None);
    }

    fn entry(state: State, approved: bool) -> Entry {
        Entry { state, approved }
    }

    // §3.4.1: "subscribed" with no pending request pre-approves (To, None, None + Pending
    // Out) and is not routed; with 'from' already it is ignored.
    #[test]
    fn rfc6121_3_4_1_preapproval_recorded() {
        for state in [None, NonePendingOut, To] {
            let o = outbound(entry(state, false), Subscribed);
            assert_eq!(o.next, entry(state, true), "{state:?}");
            assert!(!o.forward);
        }
        for state in [From, FromPendingOut, Both] {
            let o = outbound(entry(state, false), Subscribed);
            assert_eq!(o.next, entry(state, false), "{state:?}");
            assert!(!o.forward);
        }
        // With a pending request it is a normal approval.
        let o = outbound(entry(NonePendingIn, false), Subscribed);
        assert_eq!(o.next, entry(From, false));
        assert!(o.forward);
    }

    // §3.4.2: a pre-approved request is answered for the user and not delivered.
    #[test]
    fn rfc6121_3_4_2_preapproved_request_answered() {
        for (state, next) in [(None, From), (NonePendingOut, FromPendingOut), (To, Both)] {
            let o = inbound(entry(state, true), Subscribe);
            assert_eq!(o.next, entry(next, false), "{state:?}");
            assert!(!o.forward);
            assert_eq!(o.reply, Some(Subscribed));
        }
        // Without pre-approval it waits for the user.
        let o = inbound(entry(None, false), Subscribe);
        assert_eq!(o.next, entry(NonePendingIn, false));
        assert!(o.forward);
        assert_eq!(o.reply, Option::None);
    }

    // §3.4 / §3.2.2: "unsubscribed" cancels a pre-approval without being routed.
    #[test]
    fn rfc6121_3_4_preapproval_cancelled() {
        for state in [None, NonePendingOut, To] {
            let o = outbound(entry(state, true), Unsubscribed);
            assert_eq!(o.next, entry(state, false), "{state:?}");
            assert!(!o.forward);
        }
    }

    // Pre-approval survives unrelated traffic and disappears once 'from' exists.
    #[test]
    fn preapproval_kept_until_used() {
        let o = outbound(entry(None, true), Subscribe);
        assert_eq!(o.next, entry(NonePendingOut, true));
        let o = inbound(o.next, Subscribed);
        assert_eq!(o.next, entry(To, true));
        let o = inbound(o.next, Subscribe);
        assert_eq!(o.next, entry(Both, false));
    }
}
