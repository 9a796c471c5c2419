//! Affiliations and roles (XEP-0045 §5) and the permission rules between them.

use std::collections::HashMap;

use jid::BareJid;

/// §5.2, long-lived: survives leaving the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn name(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Admin => "admin",
            Affiliation::Member => "member",
            Affiliation::None => "none",
            Affiliation::Outcast => "outcast",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "owner" => Affiliation::Owner,
            "admin" => Affiliation::Admin,
            "member" => Affiliation::Member,
            "none" => Affiliation::None,
            "outcast" => Affiliation::Outcast,
            _ => return None,
        })
    }
}

/// §5.1, per visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Participant => "participant",
            Role::Visitor => "visitor",
            Role::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "moderator" => Role::Moderator,
            "participant" => Role::Participant,
            "visitor" => Role::Visitor,
            "none" => Role::None,
            _ => return None,
        })
    }
}

/// The room's affiliation list; absent means `none`.
#[derive(Debug, Clone, Default)]
pub struct Affiliations {
    list: HashMap<BareJid, (Affiliation, Option<String>)>,
}

impl Affiliations {
    pub fn get(&self, jid: &BareJid) -> Affiliation {
        self.list.get(jid).map(|a| a.0).unwrap_or(Affiliation::None)
    }

    pub fn set(&mut self, jid: BareJid, affiliation: Affiliation, reason: Option<String>) {
        if affiliation == Affiliation::None {
            self.list.remove(&jid);
        } else {
            self.list.insert(jid, (affiliation, reason));
        }
    }

    /// Everyone with `affiliation`, sorted, with the reason given (outcasts).
    pub fn with(&self, affiliation: Affiliation) -> Vec<(BareJid, Option<String>)> {
        let mut v: Vec<_> = self
            .list
            .iter()
            .filter(|(_, a)| a.0 == affiliation)
            .map(|(j, a)| (j.clone(), a.1.clone()))
            .collect();
        v.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        v
    }

    pub fn owners(&self) -> usize {
        self.list.values().filter(|a| a.0 == Affiliation::Owner).count()
    }
}

/// The default role of an affiliation on entering (§5.1.2); `moderated` makes `none` a visitor.
pub fn default_role(affiliation: Affiliation, moderated: bool) -> Role {
    match affiliation {
        Affiliation::Owner | Affiliation::Admin => Role::Moderator,
        Affiliation::Member => Role::Participant,
        Affiliation::None if moderated => Role::Visitor,
        Affiliation::None => Role::Participant,
        Affiliation::Outcast => Role::None,
    }
}

/// §5.1.3 / §8.2-8.4: may a moderator of `actor` affiliation set the role of an occupant of
/// `target` affiliation and role to `new`?
pub fn may_set_role(actor: (Affiliation, Role), target: (Affiliation, Role), new: Role) -> bool {
    if actor.1 != Role::Moderator {
        return false;
    }
    match new {
        // Granting or revoking moderator status is for admins and owners (§9.6, §9.7).
        Role::Moderator => actor.0 >= Affiliation::Admin,
        _ if target.1 == Role::Moderator && target.0 >= Affiliation::Admin => false,
        _ if target.1 == Role::Moderator => actor.0 >= Affiliation::Admin,
        _ => actor.0 >= target.0 || actor.0 >= Affiliation::Admin,
    }
}

/// §5.2.2 / §9-10: may `actor` change an affiliation from `from` to `to`?
pub fn may_set_affiliation(actor: Affiliation, from: Affiliation, to: Affiliation) -> bool {
    match actor {
        Affiliation::Owner => true,
        Affiliation::Admin => from < Affiliation::Admin && to < Affiliation::Admin,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_table() {
        use Affiliation as A;
        use Role as R;
        // A participant moderator cannot act.
        assert!(!may_set_role(
            (A::None, R::Participant),
            (A::None, R::Participant),
            R::None
        ));
        // A member moderator may kick a participant but not an admin.
        assert!(may_set_role(
            (A::Member, R::Moderator),
            (A::None, R::Participant),
            R::None
        ));
        assert!(!may_set_role(
            (A::Member, R::Moderator),
            (A::Admin, R::Moderator),
            R::None
        ));
        // Only admins grant moderator.
        assert!(!may_set_role(
            (A::Member, R::Moderator),
            (A::None, R::Participant),
            R::Moderator
        ));
        assert!(may_set_role(
            (A::Admin, R::Moderator),
            (A::None, R::Participant),
            R::Moderator
        ));
        // Admins handle members and outcasts; owners everything.
        assert!(may_set_affiliation(A::Admin, A::None, A::Outcast));
        assert!(!may_set_affiliation(A::Admin, A::Admin, A::Outcast));
        assert!(!may_set_affiliation(A::Admin, A::None, A::Owner));
        assert!(may_set_affiliation(A::Owner, A::Admin, A::Outcast));
        assert!(!may_set_affiliation(A::Member, A::None, A::Outcast));
        assert_eq!(default_role(A::None, true), R::Visitor);
        assert_eq!(default_role(A::Owner, false), R::Moderator);
    }
}
