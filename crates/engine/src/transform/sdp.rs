//! `sdp.line`, `sdp.stream`, `sdp.stream-delete`: views of an SDP body held in a variable.
//! Media types match case-insensitively; streams count from 0 across the body (negative from
//! the last). A stream is its `m=` line and every line up to the next `m=`, line ends included.

use sip::sdp::Sdp;

use super::data::{Text, TrValue};

/// `{sdp.line,X[,n]}`: the `n`-th (from 0) line of type `X`, `X=` included, line end excluded.
pub(super) fn line(t: &Text<'_>, kind: &str, n: i64) -> TrValue {
    let (Some(text), [k]) = (t.str(), kind.as_bytes()) else {
        return TrValue::Null;
    };
    let Ok(n) = usize::try_from(n) else {
        return TrValue::Null;
    };
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| l.as_bytes().first() == Some(k) && l.as_bytes().get(1) == Some(&b'='))
        .nth(n)
        .map_or(TrValue::Null, |l| TrValue::string(l.to_owned()))
}

/// Which streams an argument names: a media type, or an index.
enum Pick<'a> {
    Media(&'a str),
    Index(i64),
}

fn pick(arg: &str) -> Pick<'_> {
    match arg.trim().parse::<i64>() {
        Ok(i) => Pick::Index(i),
        Err(_) => Pick::Media(arg.trim()),
    }
}

/// Byte ranges of every stream of the body, in order, with its media type.
fn streams<'a>(sdp: &Sdp<'a>) -> Vec<(&'a str, std::ops::Range<usize>)> {
    sdp.media
        .iter()
        .filter_map(|m| {
            let first = sdp.lines.get(m.lines.start)?;
            let last = sdp.lines.get(m.lines.end.checked_sub(1)?)?;
            Some((m.media, first.span.start..last.span.end))
        })
        .collect()
}

fn chosen(all: &[(&str, std::ops::Range<usize>)], which: &Pick<'_>) -> Vec<usize> {
    match which {
        Pick::Media(name) => (0..all.len())
            .filter(|&i| {
                all.get(i)
                    .is_some_and(|(m, _)| m.eq_ignore_ascii_case(name))
            })
            .collect(),
        Pick::Index(i) => {
            let i = if *i < 0 { all.len() as i64 + i } else { *i };
            usize::try_from(i)
                .ok()
                .filter(|&i| i < all.len())
                .into_iter()
                .collect()
        }
    }
}

/// `{sdp.stream,media|index}`: the first stream of that media type, or the stream at that index.
pub(super) fn stream(t: &Text<'_>, arg: &str) -> TrValue {
    let Some(text) = t.str() else {
        return TrValue::Null;
    };
    let sdp = Sdp::parse(text);
    let all = streams(&sdp);
    let which = pick(arg);
    chosen(&all, &which)
        .first()
        .and_then(|&i| all.get(i))
        .and_then(|(_, r)| text.get(r.clone()))
        .map_or(TrValue::Null, |s| TrValue::string(s.to_owned()))
}

/// `{sdp.stream-delete,media|index}`: the body without every stream of that media type, or
/// without the stream at that index; NULL when there is none.
pub(super) fn stream_delete(t: &Text<'_>, arg: &str) -> TrValue {
    let Some(text) = t.str() else {
        return TrValue::Null;
    };
    let sdp = Sdp::parse(text);
    let all = streams(&sdp);
    let gone = chosen(&all, &pick(arg));
    if gone.is_empty() {
        return TrValue::Null;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for i in gone {
        let Some((_, r)) = all.get(i) else { continue };
        out.push_str(text.get(at..r.start).unwrap_or(""));
        at = r.end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    TrValue::string(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Value;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
m=audio 6000 RTP/AVP 0\r\n";

    fn text(s: &str) -> TrValue {
        TrValue::from(Value::str(s))
    }

    fn s(v: TrValue) -> Option<String> {
        match v.into_value() {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    #[test]
    fn lines_by_type_and_position() {
        let v = text(SDP);
        let t = Text::of(&v).unwrap();
        assert_eq!(
            s(line(&t, "m", 0)).as_deref(),
            Some("m=audio 4000 RTP/AVP 0 8")
        );
        assert_eq!(
            s(line(&t, "m", 2)).as_deref(),
            Some("m=audio 6000 RTP/AVP 0")
        );
        assert_eq!(s(line(&t, "a", 1)).as_deref(), Some("a=rtpmap:8 PCMA/8000"));
        assert_eq!(s(line(&t, "m", 3)), None);
        assert_eq!(s(line(&t, "m", -1)), None);
        assert_eq!(s(line(&t, "mm", 0)), None);
        let lf = text("v=0\nc=IN IP4 1.2.3.4\n");
        let t = Text::of(&lf).unwrap();
        assert_eq!(s(line(&t, "c", 0)).as_deref(), Some("c=IN IP4 1.2.3.4"));
    }

    #[test]
    fn streams_by_media_or_index() {
        let v = text(SDP);
        let t = Text::of(&v).unwrap();
        assert_eq!(
            s(stream(&t, "video")).as_deref(),
            Some("m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
        );
        assert_eq!(
            s(stream(&t, "AUDIO")).as_deref(),
            Some("m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
        );
        assert_eq!(
            s(stream(&t, "-1")).as_deref(),
            Some("m=audio 6000 RTP/AVP 0\r\n")
        );
        assert_eq!(s(stream(&t, "1")), s(stream(&t, "video")));
        assert_eq!(s(stream(&t, "3")), None);
        assert_eq!(s(stream(&t, "-4")), None);
        assert_eq!(s(stream(&t, "text")), None);
    }

    #[test]
    fn deleting_streams() {
        let v = text(SDP);
        let t = Text::of(&v).unwrap();
        let no_audio = s(stream_delete(&t, "audio")).unwrap();
        assert!(
            no_audio.ends_with("t=0 0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
        );
        assert!(!no_audio.contains("m=audio"));
        let no_first = s(stream_delete(&t, "0")).unwrap();
        assert!(no_first.contains("t=0 0\r\nm=video"), "{no_first}");
        assert!(no_first.ends_with("m=audio 6000 RTP/AVP 0\r\n"));
        assert_eq!(s(stream_delete(&t, "image")), None);
        assert_eq!(s(stream_delete(&t, "7")), None);
    }
}
