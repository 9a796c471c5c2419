//! XEP-0157 contact addresses: the `[contact]` section of the configuration, listed in the
//! server's disco#info as a `urn:xmpp:dataforms:serverinfo` form, and covered by the XEP-0115
//! hash advertised in the stream features.

use conformance::{ChannelBindingMode, Element, ScramHash, TestServer, ns, xml};

const SERVERINFO: &str = "urn:xmpp:dataforms:serverinfo";
const PW: &str = "passw0rd";

/// (var, values) of every field of the serverinfo form in a disco#info result, if any.
fn serverinfo(r: &Element) -> Option<Vec<(String, Vec<String>)>> {
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(r));
    let q = r.get_child("query", ns::DISCO_INFO).expect("query");
    let form = q.children().find(|x| {
        x.is("x", ns::DATA_FORMS)
            && x.children()
                .any(|f| f.attr("var") == Some("FORM_TYPE") && f.children().any(|v| v.text() == SERVERINFO))
    })?;
    assert_eq!(form.attr("type"), Some("result"));
    Some(
        form.children()
            .filter(|f| f.is("field", ns::DATA_FORMS))
            .map(|f| {
                let var = f.attr("var").unwrap_or_default().to_string();
                (var, f.children().map(|v| v.text()).collect())
            })
            .collect(),
    )
}

fn values<'a>(fields: &'a [(String, Vec<String>)], var: &str) -> Option<&'a [String]> {
    fields
        .iter()
        .find(|(v, _)| v == var)
        .map(|(_, vals)| vals.as_slice())
}

// XEP-0157 §2-3: the configured addresses, per kind, in the server's disco#info; the XEP-0115
// hash in the stream features covers the form (XEP-0115 §5.4).
#[tokio::test]
async fn xep0157_3_contact_addresses_in_server_disco_info() {
    let server = TestServer::start_with(|c| {
        c.extra_toml = "[contact]\n\
            abuse = [\"mailto:abuse@localhost\"]\n\
            admin = [\"xmpp:admin@localhost\", \"mailto:admin@localhost\"]\n\
            security = [\"https://localhost/security\"]\n\
            support = [\"xmpp:support@localhost\"]\n"
            .into();
    })
    .await;
    server.add_user("alice", PW).await;
    let mut c = server.raw().await;
    let mut features = vec![c.open_stream().await];
    features.push(c.starttls().await);
    c.sasl_scram("alice", PW, ScramHash::Sha256, ChannelBindingMode::None)
        .await
        .expect("login");
    features.push(c.restart_stream().await);
    c.bind(None).await.expect("bind");
    let r = c
        .iq(&format!(
            "<iq type='get' id='d1' to='localhost'><query xmlns='{}'/></iq>",
            ns::DISCO_INFO
        ))
        .await;
    let fields = serverinfo(&r).expect("a serverinfo form");
    assert_eq!(
        values(&fields, "abuse-addresses"),
        Some(&["mailto:abuse@localhost".to_string()][..])
    );
    assert_eq!(
        values(&fields, "admin-addresses"),
        Some(
            &[
                "xmpp:admin@localhost".to_string(),
                "mailto:admin@localhost".to_string()
            ][..]
        )
    );
    assert_eq!(
        values(&fields, "security-addresses"),
        Some(&["https://localhost/security".to_string()][..])
    );
    assert_eq!(
        values(&fields, "support-addresses"),
        Some(&["xmpp:support@localhost".to_string()][..])
    );
    // Kinds with no address are left out.
    assert_eq!(values(&fields, "sales-addresses"), None);
    let caps = features
        .iter()
        .rev()
        .find_map(|f| f.get_child("c", ns::CAPS).cloned())
        .expect("caps in the stream features");
    let q = r.get_child("query", ns::DISCO_INFO).unwrap();
    assert_eq!(
        caps.attr("ver"),
        Some(xml::caps_ver_sha1(q).as_str()),
        "the advertised hash does not cover the form (S = {:?})",
        xml::caps_verification_string(q)
    );
}

// Without addresses configured there is no form; an address that is not a URI is a
// configuration error.
#[tokio::test]
async fn xep0157_no_addresses_no_form_and_bad_address_refused() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let mut alice = server.client("alice", PW).await;
    let r = alice
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    assert!(serverinfo(&r).is_none(), "{}", xml::to_string(&r));
    let bad = server.dir().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "{}\n[contact]\nabuse = [\"abuse@localhost\"]\n",
            std::fs::read_to_string(server.config_path()).unwrap()
        ),
    )
    .unwrap();
    let out = server.cli(&["config", "check", bad.to_str().unwrap()]).await;
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("abuse-addresses"),
        "{} {}",
        out.stdout,
        out.stderr
    );
}
