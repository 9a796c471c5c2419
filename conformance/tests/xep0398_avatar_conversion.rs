//! XEP-0398 (with XEP-0084 and XEP-0153): the PEP avatar and the vCard PHOTO kept
//! consistent both ways, and the avatar hash added to the account's presence.

use base64::Engine;
use conformance::blocking::{self, PW, befriend, settle};
use conformance::pep::{DISCO_INFO, assert_ok, event_of, interested, is_event, items, publish};
use conformance::{Element, XmppClient, xml};
use sha1::{Digest, Sha1};

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const DATA: &str = "urn:xmpp:avatar:data";
const METADATA: &str = "urn:xmpp:avatar:metadata";
const UPDATE: &str = "vcard-temp:x:update";
const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\n not really an image";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hash(bytes: &[u8]) -> String {
    Sha1::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn publish_avatar(c: &mut XmppClient, bytes: &[u8]) -> String {
    let id = hash(bytes);
    let data = format!("<data xmlns='{DATA}'>{}</data>", b64(bytes));
    assert_ok(&publish(c, DATA, Some(&id), &data, &[]).await);
    let meta = format!(
        "<metadata xmlns='{METADATA}'><info id='{id}' type='image/png' bytes='{}'/></metadata>",
        bytes.len()
    );
    assert_ok(&publish(c, METADATA, Some(&id), &meta, &[]).await);
    id
}

async fn vcard_get(c: &mut XmppClient) -> Element {
    let r = c.iq("get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert_ok(&r);
    r.get_child("vCard", "vcard-temp").unwrap().clone()
}

/// §3.1 (PEP to vCard): a published avatar becomes the vCard's PHOTO; other vCard fields
/// are kept.
#[tokio::test]
async fn xep0398_3_pep_avatar_becomes_vcard_photo() {
    let server = blocking::server_with(&["alice"]).await;
    let mut alice = server.client_jid("alice@localhost/desk", PW).await;
    assert_ok(
        &alice
            .iq("set", None, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
            .await,
    );
    publish_avatar(&mut alice, IMAGE).await;
    let vcard = vcard_get(&mut alice).await;
    assert_eq!(vcard.get_child("FN", "vcard-temp").unwrap().text(), "Alice");
    let photo = vcard
        .get_child("PHOTO", "vcard-temp")
        .unwrap_or_else(|| panic!("no PHOTO: {}", xml::to_string(&vcard)));
    assert_eq!(photo.get_child("TYPE", "vcard-temp").unwrap().text(), "image/png");
    assert_eq!(
        photo.get_child("BINVAL", "vcard-temp").unwrap().text(),
        b64(IMAGE)
    );
    // Disabling the avatar (empty metadata) removes the PHOTO.
    assert_ok(
        &publish(
            &mut alice,
            METADATA,
            Some("off"),
            &format!("<metadata xmlns='{METADATA}'/>"),
            &[],
        )
        .await,
    );
    assert!(
        vcard_get(&mut alice)
            .await
            .get_child("PHOTO", "vcard-temp")
            .is_none()
    );
}

/// §3.2 (vCard to PEP): a vCard set with a PHOTO is published as avatar data and metadata,
/// notified to interested resources.
#[tokio::test]
async fn xep0398_3_vcard_photo_becomes_pep_avatar() {
    let server = blocking::server_with(&["alice"]).await;
    let mut watcher = interested(&server, "alice@localhost/watcher", &[METADATA]).await;
    let mut alice = server.client_jid("alice@localhost/legacy", PW).await;
    let vcard = format!(
        "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>{}</BINVAL></PHOTO></vCard>",
        b64(IMAGE)
    );
    assert_ok(&alice.iq("set", None, &vcard).await);
    let id = hash(IMAGE);
    let got = watcher.wait_for(|e| is_event(e, ALICE, METADATA)).await;
    let event = event_of(&got, ALICE, METADATA).unwrap();
    let info = event
        .get_child("items", conformance::pep::EVENT)
        .and_then(|i| i.get_child("item", conformance::pep::EVENT))
        .and_then(|i| i.get_child("metadata", METADATA))
        .and_then(|m| m.get_child("info", METADATA))
        .unwrap_or_else(|| panic!("no info: {}", xml::to_string(&got)));
    assert_eq!(info.attr("id"), Some(id.as_str()));
    assert_eq!(info.attr("type"), Some("image/png"));
    assert_eq!(info.attr("bytes"), Some(IMAGE.len().to_string().as_str()));
    let data = items(&mut alice, None, DATA, &format!("<item id='{id}'/>"), None)
        .await
        .unwrap();
    assert_eq!(data[0].get_child("data", DATA).unwrap().text(), b64(IMAGE));
}

/// §4 / XEP-0153: the avatar hash goes into the available presence the account's clients
/// send without one; a client's own `x:update` is left alone.
#[tokio::test]
async fn xep0398_4_presence_carries_photo_hash() {
    let server = blocking::server_with(&["alice", "bob"]).await;
    let mut alice = blocking::online(&server, "alice@localhost/desk").await;
    let mut bob = blocking::online(&server, "bob@localhost/home").await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    let id = publish_avatar(&mut alice, IMAGE).await;
    settle(&mut bob).await;
    alice.send_xml("<presence><show>away</show></presence>").await;
    let p = bob
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/desk"))
        .await;
    let photo = p
        .get_child("x", UPDATE)
        .and_then(|x| x.get_child("photo", UPDATE));
    assert_eq!(
        photo.map(|p| p.text()).as_deref(),
        Some(id.as_str()),
        "{}",
        xml::to_string(&p)
    );
    alice
        .send_xml(&format!(
            "<presence><x xmlns='{UPDATE}'><photo>clientsown</photo></x></presence>"
        ))
        .await;
    let p = bob
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/desk"))
        .await;
    let xs: Vec<&Element> = p.children().filter(|c| c.is("x", UPDATE)).collect();
    assert_eq!(xs.len(), 1);
    assert_eq!(xs[0].get_child("photo", UPDATE).unwrap().text(), "clientsown");
    // A new login learns the hash from storage.
    let mut phone = server.client_jid("alice@localhost/phone", PW).await;
    phone.send_xml("<presence/>").await;
    let p = bob
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/phone"))
        .await;
    assert!(p.get_child("x", UPDATE).is_some(), "{}", xml::to_string(&p));
}

/// The account advertises the conversion.
#[tokio::test]
async fn xep0398_2_account_advertises_conversion() {
    let server = blocking::server_with(&["alice"]).await;
    let mut alice = server.client_jid("alice@localhost/desk", PW).await;
    let r = alice
        .iq("get", Some(ALICE), &format!("<query xmlns='{DISCO_INFO}'/>"))
        .await;
    assert!(
        xml::to_string(&r).contains("urn:xmpp:pep-vcard-conversion:0"),
        "{}",
        xml::to_string(&r)
    );
}

/// §4 / XEP-0153: a contact coming online probes the account; the presence it gets back
/// carries the avatar hash too.
#[tokio::test]
async fn xep0398_4_probe_answer_carries_photo_hash() {
    let server = blocking::server_with(&["alice", "bob"]).await;
    let mut alice = blocking::online(&server, "alice@localhost/desk").await;
    let mut bob = blocking::online(&server, "bob@localhost/home").await;
    befriend(&mut alice, ALICE, &mut bob, BOB).await;
    let id = publish_avatar(&mut alice, IMAGE).await;
    alice.send_xml("<presence><show>away</show></presence>").await;
    alice.ping_server().await;
    bob.close().await;
    let mut bob = server.client_jid("bob@localhost/later", PW).await;
    bob.send_xml("<presence/>").await;
    let p = bob
        .wait_for(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/desk"))
        .await;
    let photo = p
        .get_child("x", UPDATE)
        .and_then(|x| x.get_child("photo", UPDATE));
    assert_eq!(
        photo.map(|p| p.text()).as_deref(),
        Some(id.as_str()),
        "{}",
        xml::to_string(&p)
    );
}
