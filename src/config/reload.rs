//! What a configuration reload keeps and changes, as pure functions of the running and the
//! new configuration: every key that needs a restart (marked in [`super::docs::KEYS`]) keeps
//! its running value. Applying the result to a live server is `server::reload`'s job, so
//! this module knows nothing of the server or its modules.

use toml::Value;

use super::Config;
use super::docs::{KEYS, lookup};

/// What a successful reload did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Keys whose new value is in use.
    pub applied: Vec<String>,
    /// Keys changed in the file that keep their running value until a restart.
    pub needs_restart: Vec<String>,
}

impl Outcome {
    /// One line for a log or an ad-hoc note.
    pub fn summary(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        format!(
            "configuration reloaded; changed: {}; needs restart (kept): {}",
            list(&self.applied),
            list(&self.needs_restart)
        )
    }
}

fn to_value(config: &Config) -> Result<Value, String> {
    Value::try_from(config).map_err(|e| format!("internal: cannot serialize the configuration: {e}"))
}

/// Sets (or with `None` removes) the value at a dotted path.
fn set(root: &mut Value, path: &str, value: Option<Value>) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(name) = parts.pop() else { return };
    let mut table = root;
    for part in parts {
        let Some(t) = table.as_table_mut() else { return };
        table = t
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Default::default()));
    }
    if let Some(t) = table.as_table_mut() {
        match value {
            Some(v) => {
                t.insert(name.to_string(), v);
            }
            None => {
                t.remove(name);
            }
        }
    }
}

/// The listeners without what a reload may change (their session rates).
fn listeners_fixed_part(v: &Value) -> Option<Vec<Value>> {
    let items = lookup(v, "listen")?.as_array()?;
    Some(
        items
            .iter()
            .map(|item| {
                let mut item = item.clone();
                if let Some(t) = item.as_table_mut() {
                    t.remove("session_rate");
                }
                item
            })
            .collect(),
    )
}

/// `new` with every restart-only key put back to its running value, and the names of those
/// that differed.
pub fn keep_restart_keys(old: &Config, new: Config) -> Result<(Config, Vec<String>), String> {
    let old_v = to_value(old)?;
    let mut new_v = to_value(&new)?;
    let mut kept = Vec::new();
    for key in KEYS.iter().filter(|k| k.restart && k.path != "listen") {
        let before = lookup(&old_v, key.path).cloned();
        if lookup(&new_v, key.path) != before.as_ref() {
            set(&mut new_v, key.path, before);
            kept.push(key.path.to_string());
        }
    }
    if listeners_fixed_part(&old_v) != listeners_fixed_part(&new_v) {
        set(&mut new_v, "listen", lookup(&old_v, "listen").cloned());
        kept.push("listen".to_string());
    }
    let merged: Config = new_v
        .try_into()
        .map_err(|e| format!("internal: cannot rebuild the configuration: {e}"))?;
    merged.validate().map_err(|(key, message)| {
        format!("{key}: {message} (with the running values of the keys that need a restart)")
    })?;
    Ok((merged, kept))
}

/// The documented keys whose values differ (a listener list counts as one key).
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (to_value(old), to_value(new)) else {
        return Vec::new();
    };
    KEYS.iter()
        .filter(|k| !k.path.starts_with("listen."))
        .filter(|k| {
            let (x, y) = (lookup(&a, k.path), lookup(&b, k.path));
            let section = |v: Option<&Value>| v.is_some_and(Value::is_table) && k.example.is_none();
            !section(x) && !section(y) && x != y
        })
        .map(|k| k.path.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Config {
        Config::parse(&format!("domains = [\"a.example\"]\n{extra}"), "t").unwrap()
    }

    #[test]
    fn restart_keys_keep_their_running_values() {
        let old = parse("[storage]\nurl = \"sqlite://one.db\"\n[limits]\nmax_connections = 10\n");
        let new = Config::parse(
            "domains = [\"b.example\"]\n[storage]\nurl = \"sqlite://two.db\"\n[limits]\nmax_connections = 20\n[muc]\ndomain = \"rooms.b.example\"\n",
            "t",
        )
        .unwrap();
        let (merged, kept) = keep_restart_keys(&old, new).unwrap();
        assert_eq!(merged.domains, vec!["a.example"]);
        assert_eq!(merged.storage.url, "sqlite://one.db");
        assert_eq!(merged.muc.domain, None);
        assert_eq!(merged.limits.max_connections, 20, "reloadable key applied");
        assert_eq!(kept, vec!["domains", "storage.url", "muc.domain"]);
        assert_eq!(changed_keys(&old, &merged), vec!["limits.max_connections"]);
    }

    #[test]
    fn listener_rates_reload_but_addresses_need_a_restart() {
        let listen =
            |addr: &str, rate: &str| format!("[[listen]]\nkind = \"c2s\"\naddress = \"{addr}\"\n{rate}\n");
        let old = parse(&listen("127.0.0.1:5222", ""));
        let new = parse(&listen(
            "127.0.0.1:5222",
            "session_rate = { stanzas_per_second = 7, stanza_burst = 7 }",
        ));
        let (merged, kept) = keep_restart_keys(&old, new).unwrap();
        assert!(kept.is_empty(), "{kept:?}");
        assert_eq!(
            merged.listen[0].session_rate.as_ref().unwrap().stanzas_per_second,
            7
        );
        let moved = parse(&listen("127.0.0.1:5223", ""));
        let (merged, kept) = keep_restart_keys(&old, moved).unwrap();
        assert_eq!(kept, vec!["listen"]);
        assert_eq!(merged.listen[0].address.port(), 5222);
    }

    #[test]
    fn summary_names_both_lists() {
        let o = Outcome {
            applied: vec!["limits.session_rate.stanzas_per_second".into()],
            needs_restart: vec![],
        };
        let s = o.summary();
        assert!(
            s.contains("changed: limits.session_rate.stanzas_per_second"),
            "{s}"
        );
        assert!(s.contains("needs restart (kept): none"), "{s}");
    }
}
