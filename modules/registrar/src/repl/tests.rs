use super::*;

fn ct() -> Ct {
    Ct {
        domain: "location".into(),
        aor: "alice@example.com".into(),
        uri: "sip:alice@10.0.0.1:5060".into(),
        contact_id: 0x0102_0304_0506_0708,
        callid: "cid-1".into(),
        user_agent: "Phone/1".into(),
        path: "<sip:edge;lr>".into(),
        attr: String::new(),
        received: "sip:192.0.2.1:5060".into(),
        instance: "\"<urn:uuid:1>\"".into(),
        expires: 1_700_000_000,
        q: 500,
        socket: "udp:127.0.0.1:5060".into(),
        cseq: 7,
        flags: 0,
        cflags: "NAT PERSIST".into(),
        methods: -1,
        last_modified: 1_699_999_000,
        kv_store: String::new(),
    }
}

/// BIN fields written by hand, independently of [`Body`].
struct Hand(Vec<u8>);

impl Hand {
    fn s(mut self, v: &[u8]) -> Hand {
        self.0.extend_from_slice(&(v.len() as u16).to_le_bytes());
        self.0.extend_from_slice(v);
        self
    }
    fn i(mut self, v: i32) -> Hand {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

/// ul_cluster.c's `bin_push_contact` order, then the matching mode.
fn hand_insert(c: &Ct, mode: i32) -> Vec<u8> {
    Hand(Vec::new())
        .s(c.domain.as_bytes())
        .s(c.aor.as_bytes())
        .s(c.uri.as_bytes())
        .s(&c.contact_id.to_le_bytes())
        .s(c.callid.as_bytes())
        .s(c.user_agent.as_bytes())
        .s(c.path.as_bytes())
        .s(c.attr.as_bytes())
        .s(c.received.as_bytes())
        .s(c.instance.as_bytes())
        .s(&c.expires.to_le_bytes())
        .s(&c.q.to_le_bytes())
        .s(c.socket.as_bytes())
        .i(c.cseq)
        .i(c.flags)
        .s(c.cflags.as_bytes())
        .i(c.methods)
        .s(&c.last_modified.to_le_bytes())
        .s(c.kv_store.as_bytes())
        .i(mode)
        .0
}

#[test]
fn contact_insert_has_the_opensips_field_order() {
    let c = ct();
    let (t, body) = encode(&Event::CtInsert(c.clone(), Match::ContactCallid));
    assert_eq!(t, UCONTACT_INSERT);
    assert_eq!(body, hand_insert(&c, 1));
    // The id is the u64's 8 bytes, in a 16-bit-length string.
    let at = 2 + 8 + 2 + 17 + 2 + 23;
    assert_eq!(&body[at..at + 10], &[8, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(
        decode(UCONTACT_INSERT, VERSION, &body),
        Ok(Event::CtInsert(c, Match::ContactCallid))
    );
}

#[test]
fn contact_update_carries_the_id_after_the_kv_store() {
    let c = ct();
    let (t, body) = encode(&Event::CtUpdate(c.clone(), Match::Contact));
    assert_eq!(t, UCONTACT_UPDATE);
    let mut want = Hand(Vec::new())
        .s(c.domain.as_bytes())
        .s(c.aor.as_bytes())
        .s(c.uri.as_bytes())
        .0;
    // From the Call-ID to the kv store, as in the insert; then the id, then the mode.
    let ins = hand_insert(&c, 0);
    let from = 2 + 8 + 2 + 17 + 2 + 23 + 10;
    want.extend_from_slice(&ins[from..ins.len() - 4]);
    let want = Hand(want).s(&c.contact_id.to_le_bytes()).i(0).0;
    assert_eq!(body, want);
    assert_eq!(
        decode(t, VERSION, &body),
        Ok(Event::CtUpdate(c, Match::Contact))
    );
}

#[test]
fn records_and_deletes_round_trip() {
    let aor = Aor {
        domain: "location".into(),
        aor: "bob".into(),
        label: 77,
        next_clabel: 3,
        kv_store: "{\"k\":\"v\"}".into(),
    };
    let events = [
        Event::AorInsert(aor.clone()),
        Event::AorDelete {
            domain: "location".into(),
            aor: "bob".into(),
        },
        Event::CtDelete(
            CtDel {
                domain: "location".into(),
                aor: "bob".into(),
                uri: "sip:bob@h".into(),
                callid: "c".into(),
                cseq: 9,
            },
            Match::Params(vec!["pn-provider".into(), "pn-prid".into()]),
        ),
    ];
    for e in events {
        let (t, body) = encode(&e);
        assert_eq!(decode(t, VERSION, &body), Ok(e));
    }
    let (t, body) = encode(&Event::AorInsert(aor));
    assert_eq!(t, URECORD_INSERT);
    let want = Hand(Vec::new())
        .s(b"location")
        .s(b"bob")
        .i(77)
        .i(3)
        .s(b"{\"k\":\"v\"}")
        .0;
    assert_eq!(body, want);
    // Version 4 had no kv store in the record.
    let v4 = &body[..body.len() - 11];
    let Ok(Event::AorInsert(a)) = decode(URECORD_INSERT, 4, v4) else {
        panic!()
    };
    assert_eq!((a.label, a.kv_store.as_str()), (77, ""));
}

#[test]
fn older_versions_read_as_opensips_reads_them() {
    let c = ct();
    // Version 3: cflags an int bitmask.
    let mut h = hand_insert(&c, 0);
    let tail = 4 + (2 + 8) + 2 + 4 + (2 + c.cflags.len());
    let head = h.len() - tail;
    h.truncate(head);
    let v3 = Hand(h)
        .i(5)
        .i(c.methods)
        .s(&c.last_modified.to_le_bytes())
        .s(b"")
        .i(0)
        .0;
    let Ok(Event::CtInsert(got, Match::Contact)) = decode(UCONTACT_INSERT, 3, &v3) else {
        panic!("{:?}", decode(UCONTACT_INSERT, 3, &v3));
    };
    assert_eq!(got.cflags, "5");
    // Version 2: no matching mode, read as URI + Call-ID.
    let v2 = &v3[..v3.len() - 4];
    assert!(matches!(
        decode(UCONTACT_INSERT, 2, v2),
        Ok(Event::CtInsert(_, Match::ContactCallid))
    ));
    assert_eq!(
        decode(UCONTACT_INSERT, 1, v2),
        Err(Malformed::BadVersion(1))
    );
    assert_eq!(
        decode(UCONTACT_INSERT, 6, v2),
        Err(Malformed::BadVersion(6))
    );
}

#[test]
fn malformed_bodies_are_errors_never_panics() {
    let (t, body) = encode(&Event::CtUpdate(ct(), Match::ContactCallid));
    for cut in 0..body.len() {
        assert!(decode(t, VERSION, &body[..cut]).is_err(), "cut at {cut}");
    }
    for i in 0..body.len() {
        for b in [0u8, 0xff, 0x7f, 3] {
            let mut bad = body.clone();
            bad[i] = b;
            for ty in 1..=5 {
                let _ = decode(ty, VERSION, &bad);
                let _ = decode_chunk(VERSION, &bad);
            }
        }
    }
    assert_eq!(decode(9, VERSION, &body), Err(Malformed::UnknownType(9)));
    // An id of 4 bytes is not a u64.
    let short_id = Hand(Vec::new())
        .s(b"location")
        .s(b"a")
        .s(b"sip:a@h")
        .s(&[1, 2, 3, 4])
        .0;
    assert_eq!(
        decode(UCONTACT_INSERT, VERSION, &short_id),
        Err(Malformed::BadSize("contact id", 4))
    );
    let no_aor = Hand(Vec::new()).s(b"location").s(b"").0;
    assert_eq!(
        decode(URECORD_DELETE, VERSION, &no_aor),
        Err(Malformed::MissingAor)
    );
}

#[test]
fn sync_chunks_carry_a_record_then_its_contacts() {
    let a = Aor {
        domain: "location".into(),
        aor: "alice@example.com".into(),
        label: 1,
        next_clabel: 2,
        kv_store: String::new(),
    };
    let mut w = clusterer::cap::SyncWriter::new(CAP, 1, 1, 2, 65535);
    w.chunk(VERSION).raw(&sync_aor(&a));
    w.chunk(VERSION).raw(&sync_contact(&ct()));
    let packets = w.finish();
    assert_eq!(packets.len(), 2, "one SYNC and the SYNC_END");
    let p = clusterer::bin::Packet::parse(&packets[0]).unwrap();
    let (mut body, _) = p.split_trailer(3).unwrap();
    assert_eq!(body.str().as_deref(), Ok(CAP));
    assert_eq!(body.int(), Ok(i32::from(VERSION)));
    let got: Vec<Event> = clusterer::cap::chunks(body.rest())
        .into_iter()
        .map(|c| decode_chunk(VERSION, c.rest()).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            Event::AorInsert(a),
            Event::CtInsert(ct(), Match::ContactCallid)
        ]
    );
}

fn unhex(parts: &[&str]) -> Vec<u8> {
    let h: String = parts.concat();
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

/// The header (marker, length, version, capability, type) and trailer of a module packet
/// come off; the body is left.
fn body_of(pk: &[u8]) -> (i32, i16, Vec<u8>) {
    let p = clusterer::bin::Packet::parse(pk).unwrap();
    assert_eq!(p.capability, CAP);
    let (body, trailer) = p.split_trailer(3).unwrap();
    assert_eq!(trailer, vec![1, 1, 2], "cluster 1, from node 1 to node 2");
    (p.packet_type, p.version, body.rest().to_vec())
}

/// What an OpenSIPS 4.1.0-dev node (usrloc `full-sharing-cluster`) sent when a phone
/// registered at it: URECORD_INSERT, then UCONTACT_INSERT with matching mode -1 (the
/// registrar leaves it to the receiver).
#[test]
fn reads_and_writes_the_packets_of_a_real_opensips_node() {
    let aor = unhex(&[
        "5034434b54000000050013007573726c6f632d636f6e746163742d7265706c01",
        "00000008006c6f636174696f6e0f00616c696365403132372e302e302e310000",
        "00005c3f00000000010000000100000002000000",
    ]);
    let ct = unhex(&[
        "5034434bd2000000050013007573726c6f632d636f6e746163742d7265706c03",
        "00000008006c6f636174696f6e0f00616c696365403132372e302e302e311900",
        "7369703a616c696365403132372e302e302e313a313737303108005c3f000000",
        "c01f2b0b007265672d616c696365407809004f7350686f6e652f310000000000",
        "000000080093c5166b000000000400bc02000013007564703a3132372e302e30",
        "2e313a313736363101000000000000000000ffffffff08003bc3166b00000000",
        "0000ffffffff010000000100000002000000",
    ]);
    let (t, v, body) = body_of(&aor);
    assert_eq!((t, v), (URECORD_INSERT, 5));
    let e = decode(t, v, &body).unwrap();
    let Event::AorInsert(a) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (a.domain.as_str(), a.aor.as_str()),
        ("location", "alice@127.0.0.1")
    );
    assert_eq!(encode(&e), (t, body));

    let (t, v, body) = body_of(&ct);
    assert_eq!((t, v), (UCONTACT_INSERT, 5));
    let e = decode(t, v, &body).unwrap();
    let Event::CtInsert(c, Match::Default) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(c.uri, "sip:alice@127.0.0.1:17701");
    assert_eq!(c.contact_id, 3_107_413_374_141_480_796);
    assert_eq!(
        (c.callid.as_str(), c.user_agent.as_str()),
        ("reg-alice@x", "OsPhone/1")
    );
    assert_eq!((c.q, c.cseq, c.methods), (700, 1, -1));
    assert_eq!(c.expires - c.last_modified, 600);
    assert_eq!(c.socket, "udp:127.0.0.1:17661");
    assert_eq!(
        encode(&e),
        (t, body),
        "ours is laid out byte for byte the same"
    );
}

/// The SYNC an OpenSIPS 4.1.0-dev donor sent a restarted node: carol's record and her two
/// contacts, bob's record and contact (one chunk each, contacts matched by URI and
/// Call-ID).
#[test]
fn reads_and_writes_the_sync_of_a_real_opensips_donor() {
    let sync = unhex(&[
        "5034434b9402000003000f00636c757374657265722d65787472610b00000013",
        "007573726c6f632d636f6e746163742d7265706c0500000029000000b54a0506",
        "0000000008006c6f636174696f6e0f006361726f6c403132372e302e302e3100",
        "000000491d00000000a5000000b54a05060100000008006c6f636174696f6e0f",
        "006361726f6c403132372e302e302e3119007369703a6361726f6c403132372e",
        "302e302e313a31373730330800471d00000000c4090b007265672d6361726f6c",
        "407807004361726f6c2f310000000000000000080032c6166b000000000400bc",
        "02000013007564703a3132372e302e302e313a31373636310100000000000000",
        "0000ffffffff080076c3166b00000000000001000000a5000000b54a05060100",
        "000008006c6f636174696f6e0f006361726f6c403132372e302e302e31190073",
        "69703a6361726f6c403132372e302e302e313a31373730340800481d00000000",
        "c4090b007265672d6361726f6c407807004361726f6c2f310000000000000000",
        "080032c6166b000000000400bc02000013007564703a3132372e302e302e313a",
        "313736363102000000000000000000ffffffff080076c3166b00000000000001",
        "00000027000000b54a05060000000008006c6f636174696f6e0d00626f624031",
        "32372e302e302e3180346cb10300000000008e000000b54a0506010000000800",
        "6c6f636174696f6e0d00626f62403132372e302e302e3117007369703a626f62",
        "403132372e302e302e313a313737303208000200200d5b2cd80f09007265672d",
        "626f6240780900527350686f6e652f3200000000000000000800dec6166b0000",
        "00000400bc020000000002000000000000000000ffffffff08005ac3166b0000",
        "0000000001000000010000000100000002000000",
    ]);
    let p = clusterer::bin::Packet::parse(&sync).unwrap();
    assert_eq!(p.capability, "clusterer-extra");
    let (mut body, _) = p.split_trailer(3).unwrap();
    assert_eq!(body.str().as_deref(), Ok(CAP));
    assert_eq!(body.int(), Ok(5), "the donor's data version");
    let chunks = clusterer::cap::chunks(body.rest());
    assert_eq!(chunks.len(), 5);
    let mut seen = Vec::new();
    for c in &chunks {
        let e = decode_chunk(5, c.rest()).unwrap();
        // Ours, for the same data, is the same chunk.
        let again = match &e {
            Event::AorInsert(a) => sync_aor(a),
            Event::CtInsert(ct, Match::ContactCallid) => sync_contact(ct),
            other => panic!("{other:?}"),
        };
        assert_eq!(again, c.rest());
        seen.push(match e {
            Event::AorInsert(a) => a.aor,
            Event::CtInsert(ct, _) => format!("{} {} cseq {}", ct.uri, ct.user_agent, ct.cseq),
            _ => unreachable!(),
        });
    }
    assert_eq!(
        seen,
        [
            "carol@127.0.0.1",
            "sip:carol@127.0.0.1:17703 Carol/1 cseq 1",
            "sip:carol@127.0.0.1:17704 Carol/1 cseq 2",
            "bob@127.0.0.1",
            "sip:bob@127.0.0.1:17702 RsPhone/2 cseq 2",
        ]
    );
}
