#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::*;

fn sel(scope: SdpScope, text: &str) -> Selector<i64> {
    parse_selector(scope, text)
        .unwrap()
        .try_map(|i| match i {
            RawIdx::At(n) => Ok::<i64, ()>(n),
            RawIdx::Pv(_) => Err(()),
        })
        .unwrap()
}

fn chunk(prefix: &str, idx: i64) -> Chunk<i64> {
    Chunk {
        prefix: prefix.into(),
        idx,
    }
}

#[test]
fn selectors_split_as_opensips_does() {
    let s = sel(SdpScope::Body, "a=[3]/annexb [1]");
    assert_eq!(s.line, chunk("a=", 3));
    // Trailing blanks stay part of a prefix, leading ones do not.
    assert_eq!(s.token, Some(chunk("annexb ", 1)));
    let s = sel(SdpScope::Body, "m=audio[1]/RTP\\/AVP[0]");
    assert_eq!(s.token, Some(chunk("RTP/AVP", 0)));
    // A trailing `/` selects the first token (empty prefix).
    let s = sel(SdpScope::Session, "[1]/");
    assert_eq!((s.line, s.token), (chunk("", 1), Some(chunk("", 0))));
    let s = sel(SdpScope::Stream, "/");
    assert_eq!(
        (s.stream, s.line, s.token),
        (Some(chunk("", 0)), chunk("", 0), None)
    );
    let s = sel(SdpScope::Stream, "audio[2] junk/a=rtpmap[4]/PCM");
    assert_eq!(s.stream, Some(chunk("audio", 2)));
    assert_eq!(s.line, chunk("a=rtpmap", 4));
    assert_eq!(s.token, Some(chunk("PCM", 0)));
    // Chunks past the last one a variable has are ignored.
    let s = sel(SdpScope::Body, "a/b/c");
    assert_eq!((s.line, s.token), (chunk("a", 0), Some(chunk("b", 0))));
    let s = parse_selector(SdpScope::Stream, "audio[$var(i)]/a=rtpmap[ $var(j) ]").unwrap();
    assert!(matches!(s.stream.unwrap().idx, RawIdx::Pv(p) if p.arg.as_deref() == Some("i")));
    assert!(matches!(s.line.idx, RawIdx::Pv(p) if p.arg.as_deref() == Some("j")));
}

#[test]
fn bad_selectors_are_refused() {
    for bad in [
        "",
        "a=[1",
        "a=[x]",
        "a=[-1]",
        "$var(x)",
        "@rpl",
        "a=[$var(i)",
    ] {
        assert!(parse_selector(SdpScope::Body, bad).is_err(), "{bad:?}");
    }
    assert_eq!(sel(SdpScope::Body, "a=[]").line, chunk("a=", 0));
}

const SDP: &str = "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

#[test]
fn lines_are_found_by_scope_prefix_and_index() {
    let l = Lines::parse(SDP).unwrap();
    assert_eq!(l.sep, "\r\n");
    assert_eq!(l.lines.len(), 10);
    let r = |scope, t: &str| read(&l, &sel(scope, t)).map(str::to_owned);
    assert_eq!(
        r(SdpScope::Body, "A=RTPMAP[1]").as_deref(),
        Some("a=rtpmap:8 PCMA/8000")
    );
    assert_eq!(r(SdpScope::Body, "a=rtpmap[3]"), None);
    assert_eq!(r(SdpScope::Body, "[10]"), None);
    assert_eq!(r(SdpScope::Session, "[4]").as_deref(), Some("t=0 0"));
    // The session ends at the first m= line.
    assert_eq!(r(SdpScope::Session, "[5]"), None);
    assert_eq!(r(SdpScope::Session, "m="), None);
    assert_eq!(
        r(SdpScope::Stream, "video/a=rtpmap").as_deref(),
        Some("a=rtpmap:96 H264/90000")
    );
    assert_eq!(
        r(SdpScope::Stream, "audio/[2]").as_deref(),
        Some("a=rtpmap:8 PCMA/8000")
    );
    // Past the stream's last line is not the next stream's m= line.
    assert_eq!(r(SdpScope::Stream, "audio/[3]"), None);
    assert_eq!(r(SdpScope::Stream, "[1]/[0]/[3]").as_deref(), Some("96"));
    assert_eq!(r(SdpScope::Stream, "video[1]"), None);
    assert_eq!(r(SdpScope::Body, "m=/rtp").as_deref(), Some("RTP/AVP"));
    assert_eq!(r(SdpScope::Body, "m=/[5]"), None);
    assert_eq!(
        l.find(&sel(SdpScope::Stream, "video/a=rtpmap:96"), false),
        Some(9)
    );
}

#[test]
fn separators_follow_the_first_line() {
    let l = Lines::parse("v=0\no=a\r\ns=-").unwrap();
    assert_eq!(l.sep, "\n");
    assert_eq!(l.lines, ["v=0", "o=a\r", "s=-"]);
    // Rendering ends every line, the last one too.
    assert_eq!(l.render(), "v=0\no=a\r\ns=-\n");
    assert_eq!(Lines::parse("v=0 no line end"), None);
    assert_eq!(Lines::parse("v=0\r").unwrap().sep, "\r");
}

#[test]
fn edits_insert_replace_and_delete() {
    let mut l = Lines::parse(SDP).unwrap();
    let s = |t: &str| sel(SdpScope::Stream, t);
    edit(
        &mut l,
        &s("audio/a=rtpmap[0]"),
        LineOp::InsertAfter,
        Some("a=x\r\n"),
    )
    .unwrap();
    edit(&mut l, &s("audio/[0]"), LineOp::Insert, Some("i=first")).unwrap();
    edit(&mut l, &s("audio/a=rtpmap[1]"), LineOp::Set, None).unwrap();
    edit(&mut l, &s("video/[2]"), LineOp::Insert, Some("a=sendonly")).unwrap();
    edit(&mut l, &s("video/[2]"), LineOp::Set, Some("a=recvonly")).unwrap();
    assert_eq!(
        edit(&mut l, &s("video/[4]"), LineOp::Set, Some("a=z")),
        Err(EditError::NoLine)
    );
    assert_eq!(
        edit(&mut l, &s("audio"), LineOp::Insert, None),
        Err(EditError::InsertNull)
    );
    let tail: Vec<&str> = l.lines.iter().skip(5).map(|c| c.as_ref()).collect();
    assert_eq!(
        tail,
        [
            "i=first",
            "m=audio 4000 RTP/AVP 0 8",
            "a=rtpmap:0 PCMU/8000",
            "a=x",
            "m=video 5000 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "a=recvonly"
        ]
    );
}

#[test]
fn token_writes_keep_the_prefix_and_null_removes_the_token() {
    let mut l = Lines::parse("v=0\r\na=fmtp:101 0-15 x=1\r\n").unwrap();
    let s = |t: &str| sel(SdpScope::Body, t);
    edit(&mut l, &s("a=fmtp/0-"), LineOp::Set, Some("16")).unwrap();
    assert_eq!(l.lines[1], "a=fmtp:101 0-16 x=1");
    edit(&mut l, &s("a=fmtp/x="), LineOp::Set, None).unwrap();
    assert_eq!(l.lines[1], "a=fmtp:101 0-16");
    edit(&mut l, &s("a=fmtp/[0]"), LineOp::Set, None).unwrap();
    assert_eq!(l.lines[1], "0-16");
    assert_eq!(
        edit(&mut l, &s("a=fmtp/zzz"), LineOp::Set, Some("1")),
        Err(EditError::NoLine)
    );
    assert_eq!(
        edit(&mut l, &s("0-/zzz"), LineOp::Set, Some("1")),
        Err(EditError::NoToken)
    );
}
