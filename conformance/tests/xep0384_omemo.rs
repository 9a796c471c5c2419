//! XEP-0384 OMEMO over PEP, in raw XML: a device list and a bundle published with
//! `pubsub#access_model=open` through publish-options (as Conversations, Dino and Gajim do)
//! can be fetched by another user who shares no presence subscription; republishing with the
//! same options keeps working; without them the node stays presence-only.

use conformance::{Element, RawClient, TestServer, xml};

const PW: &str = "passw0rd";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const LEGACY: &str = "eu.siacs.conversations.axolotl";
const OMEMO2: &str = "urn:xmpp:omemo:2";

async fn server() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    server
}

fn open_options(extra: &str) -> String {
    format!(
        "<publish-options><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='pubsub#access_model'><value>open</value></field>{extra}</x></publish-options>"
    )
}

async fn send(c: &mut RawClient, xml_text: &str) -> Element {
    let r = c.iq(xml_text).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
    r
}

fn only_item(r: &Element, node: &str) -> Element {
    let items = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .unwrap_or_else(|| panic!("no items: {}", xml::to_string(r)));
    assert_eq!(items.attr("node"), Some(node));
    let all: Vec<&Element> = items.children().collect();
    assert_eq!(all.len(), 1, "{}", xml::to_string(r));
    all[0].clone()
}

/// Legacy OMEMO (eu.siacs.conversations.axolotl, 0.3): device list item `current`, one
/// bundle node per device.
#[tokio::test]
async fn xep0384_legacy_devicelist_and_bundle_fetched_by_stranger() {
    let server = server().await;
    let mut alice = server.raw_login("alice", PW, Some("phone")).await;
    let mut bob = server.raw_login("bob", PW, Some("laptop")).await;
    let devicelist = format!("{LEGACY}.devicelist");
    let bundle_node = format!("{LEGACY}.bundles:31415");
    let list = format!("<list xmlns='{LEGACY}'><device id='31415'/></list>");
    let bundle = format!(
        "<bundle xmlns='{LEGACY}'><signedPreKeyPublic signedPreKeyId='1'>BASE64</signedPreKeyPublic>\
         <signedPreKeySignature>SIG</signedPreKeySignature><identityKey>IK</identityKey>\
         <prekeys><preKeyPublic preKeyId='1'>PK1</preKeyPublic><preKeyPublic preKeyId='2'>PK2</preKeyPublic></prekeys></bundle>"
    );
    for (node, id, payload) in [
        (&devicelist, "current", &list),
        (&bundle_node, "current", &bundle),
    ] {
        send(
            &mut alice,
            &format!(
                "<iq type='set' id='p{id}{}'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{id}'>{payload}</item></publish>{}</pubsub></iq>",
                node.len(),
                open_options("")
            ),
        )
        .await;
    }
    for (node, payload) in [(&devicelist, &list), (&bundle_node, &bundle)] {
        let r = send(
            &mut bob,
            &format!(
                "<iq type='get' id='g{}' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><items node='{node}' max_items='1'/></pubsub></iq>",
                node.len()
            ),
        )
        .await;
        let item = only_item(&r, node);
        assert_eq!(item.attr("id"), Some("current"));
        let expected: Element = payload.parse().unwrap();
        assert_eq!(
            item.children().next(),
            Some(&expected),
            "payload returned as published"
        );
    }
    // Republishing the device list with the same options keeps working.
    send(
        &mut alice,
        &format!(
            "<iq type='set' id='again'><pubsub xmlns='{PUBSUB}'><publish node='{devicelist}'><item id='current'><list xmlns='{LEGACY}'><device id='31415'/><device id='27182'/></list></item></publish>{}</pubsub></iq>",
            open_options("")
        ),
    )
    .await;
    let r = send(
        &mut bob,
        &format!("<iq type='get' id='g2' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><items node='{devicelist}'/></pubsub></iq>"),
    )
    .await;
    assert_eq!(
        only_item(&r, &devicelist)
            .children()
            .next()
            .unwrap()
            .children()
            .count(),
        2
    );
}

/// OMEMO 2 (urn:xmpp:omemo:2): the bundles node holds one item per device
/// (`pubsub#max_items=max`); another user fetches a given device's bundle by item id.
#[tokio::test]
async fn xep0384_omemo2_bundles_by_device_id_fetched_by_stranger() {
    let server = server().await;
    let mut alice = server.raw_login("alice", PW, Some("phone")).await;
    let mut bob = server.raw_login("bob", PW, Some("laptop")).await;
    let max = "<field var='pubsub#max_items'><value>max</value></field>";
    for device in ["1001", "1002"] {
        send(
            &mut alice,
            &format!(
                "<iq type='set' id='b{device}'><pubsub xmlns='{PUBSUB}'><publish node='{OMEMO2}:bundles'><item id='{device}'><bundle xmlns='{OMEMO2}'><spk id='0'>S{device}</spk><spks>G</spks><ik>I</ik><prekeys><pk id='1'>P</pk></prekeys></bundle></item></publish>{}</pubsub></iq>",
                open_options(max)
            ),
        )
        .await;
    }
    send(
        &mut alice,
        &format!(
            "<iq type='set' id='dl'><pubsub xmlns='{PUBSUB}'><publish node='{OMEMO2}:devices'><item id='current'><devices xmlns='{OMEMO2}'><device id='1001'/><device id='1002'/></devices></item></publish>{}</pubsub></iq>",
            open_options("")
        ),
    )
    .await;
    let r = send(
        &mut bob,
        &format!("<iq type='get' id='g' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><items node='{OMEMO2}:bundles'><item id='1001'/></items></pubsub></iq>"),
    )
    .await;
    let item = only_item(&r, &format!("{OMEMO2}:bundles"));
    assert_eq!(item.attr("id"), Some("1001"));
    assert!(xml::to_string(&item).contains("S1001"));
    let r = send(
        &mut bob,
        &format!("<iq type='get' id='g2' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><items node='{OMEMO2}:bundles'/></pubsub></iq>"),
    )
    .await;
    let count = r
        .get_child("pubsub", PUBSUB)
        .unwrap()
        .get_child("items", PUBSUB)
        .unwrap()
        .children()
        .count();
    assert_eq!(count, 2, "both devices' bundles are kept");
    // Publishing without the options to a presence-only node: a stranger is refused.
    send(
        &mut alice,
        &format!("<iq type='set' id='priv'><pubsub xmlns='{PUBSUB}'><publish node='urn:x:private'><item><x xmlns='urn:x'/></item></publish></pubsub></iq>"),
    )
    .await;
    let r = bob
        .iq(&format!("<iq type='get' id='g3' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><items node='urn:x:private'/></pubsub></iq>"))
        .await;
    assert_eq!(r.attr("type"), Some("error"), "{}", xml::to_string(&r));
    assert!(xml::to_string(&r).contains("presence-subscription-required"));
}
