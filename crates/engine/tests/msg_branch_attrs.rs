//! `$msg.branch.attr(NAME)` (OpenSIPS pvar.c / dset.c): named per-branch attributes of the
//! destination set — indexes, NULL removal — and the dset functions that move, swap and
//! remove branches with their attributes.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Script, Worker};
use sip::SipMessage;

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";

fn compile(src: &str) -> Result<Script, String> {
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    Script::compile(&parsed.config, &sources, &Available::default())
        .map_err(|d| d.iter().map(|d| d.render(&sources)).collect())
}

fn logs(src: &str) -> Vec<String> {
    let script = compile(src).unwrap();
    let mut c = MsgCtx::new(SipMessage::parse(Bytes::from_static(INVITE)).unwrap());
    let (mut w, mut log) = (Worker::default(), MemoryLog::default());
    script.run(&mut w, &mut c, &mut log).unwrap();
    log.lines.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn attributes_are_per_branch_and_no_index_is_the_last_branch() {
    let l = logs(
        r#"route {
            $msg.branch.attr(name) = "ruri";
            append_msg_branch("sip:carol@example.com");
            $msg.branch.attr(name) = "carol";
            $msg.branch.attr(num) = 5;
            $(msg.branch.attr(num)[0]) = 7;
            $msg.branch = "sip:dave@example.com";
            $(msg.branch.attr(name)[-1]) = "dave";
            xlog("last=$msg.branch.attr(name) 0=$(msg.branch.attr(name)[0]) 1=$(msg.branch.attr(name)[1]) -3=$(msg.branch.attr(name)[-3])\n");
            xlog("n0=$(msg.branch.attr(num)[0]) n1=$(msg.branch.attr(num)[1]) n2=$(msg.branch.attr(num)[2]) past=$(msg.branch.attr(name)[3]) before=$(msg.branch.attr(name)[-4]) other=$(msg.branch.attr(Name)[0])\n");
            $(msg.branch.attr(num)[1]) = NULL;
            $(msg.branch.attr(num)[5]) = 1;
            xlog("n1=$(msg.branch.attr(num)[1]) n5=$(msg.branch.attr(num)[5])\n");
            $var(n) = $(msg.branch.attr(num)[0]) + 1;
            if ($var(n) == 8 && $(msg.branch.attr(name)[1]) == "carol")
                xlog("typed\n");
        }"#,
    );
    assert_eq!(
        l,
        [
            "last=dave 0=ruri 1=carol -3=ruri\n",
            "n0=7 n1=5 n2=<null> past=<null> before=<null> other=<null>\n",
            "n1=<null> n5=<null>\n",
            "typed\n",
        ]
    );
}

#[test]
fn moves_swaps_and_removals_carry_the_attributes() {
    let l = logs(
        r#"route {
            $msg.branch.attr(who) = "bob";
            append_msg_branch("sip:carol@example.com");
            $msg.branch.attr(who) = "carol";
            append_msg_branch("sip:dave@example.com");
            $msg.branch.attr(who) = "dave";
            swap_msg_branches(-1, 1);
            xlog("ru=$ru 0=$(msg.branch.attr(who)[0]) 2=$(msg.branch.uri[2])/$(msg.branch.attr(who)[2])\n");
            move_msg_branch(0, 1);
            xlog("last=$msg.branch.last_idx 1=$(msg.branch.uri[1])/$(msg.branch.attr(who)[1])\n");
            move_msg_branch(0, , "keep");
            xlog("ru=$ru 0=$(msg.branch.attr(who)[0]) last=$msg.branch.last_idx\n");
            $(msg.branch.attr(who)[0]) = "changed";
            move_msg_branch(-1, 0, "keep");
            xlog("1=$(msg.branch.attr(who)[1])\n");
            remove_msg_branch(0);
            xlog("last=$msg.branch.last_idx 1=$(msg.branch.attr(who)[1]) 0=$(msg.branch.attr(who)[0])\n");
            if (!remove_msg_branch(0)) xlog("nothing to remove\n");
            if (!swap_msg_branches(0, 3)) xlog("no such branch\n");
        }"#,
    );
    assert_eq!(
        l,
        [
            "ru=sip:dave@example.com 0=dave 2=sip:bob@biloxi.com/bob\n",
            "last=1 1=sip:carol@example.com/carol\n",
            "ru=sip:carol@example.com 0=carol last=1\n",
            "1=changed\n",
            "last=0 1=<null> 0=changed\n",
            "nothing to remove\n",
            "no such branch\n",
        ]
    );
}

#[test]
fn the_all_index_is_refused_for_attributes() {
    let e = compile(r#"route { $(msg.branch.attr(x)[*]) = 1; }"#)
        .err()
        .unwrap();
    assert!(e.contains("takes a branch number"), "{e}");
    let e = compile(r#"route { xlog("$(msg.branch.attr(x)[*])"); }"#)
        .err()
        .unwrap();
    assert!(
        e.contains("`$msg.branch.attr` takes a branch number"),
        "{e}"
    );
    // An index from a variable is read (attributes_read_at_an_index_from_a_variable).
    assert!(compile(r#"route { xlog("$(msg.branch.attr(x)[$var(i)])"); }"#).is_ok());
}

// `$msg.branch.uri|duri|q|flags[i] = v` (OpenSIPS pvar.c _int_pv_set_branch_fields): no index is
// the last branch, 0 the R-URI's; a missing branch or a bad value leaves everything as it was.
#[test]
fn branch_fields_are_writable_by_index() {
    let l = logs(
        r#"route {
            setbflag("NAT");
            append_msg_branch("sip:carol@example.com", "0.5");
            append_msg_branch("sip:dave@example.com");
            $msg.branch.uri = "sip:erin@example.com";
            $(msg.branch.duri[1]) = "sip:proxy.example.com";
            $(msg.branch.q[1]) = 700;
            $(msg.branch.q[2]) = NULL;
            $(msg.branch.flags[1]) = "NAT";
            $(msg.branch.uri[0]) = "sip:frank@example.com";
            $(msg.branch.flags[0]) = NULL;
            xlog("0=$(msg.branch.uri[0]) ru=$ru f0=[$(msg.branch.flags[0])]\n");
            xlog("1=$(msg.branch.uri[1]) du=$(msg.branch.duri[1]) q=$(msg.branch.q[1]) f1=[$(msg.branch.flags[1])]\n");
            xlog("2=$(msg.branch.uri[2]) q=$(msg.branch.q[2])\n");
            $(msg.branch.duri[1]) = NULL;
            xlog("du=$(msg.branch.duri[1])\n");
            # Refused: no such branch, a q out of range, an unknown flag, an empty URI.
            $(msg.branch.uri[5]) = "sip:x@example.com";
            $(msg.branch.q[1]) = 2000;
            $(msg.branch.flags[1]) = "NOSUCH";
            $(msg.branch.uri[1]) = "";
            xlog("last=$msg.branch.last_idx 1=$(msg.branch.uri[1]) q=$(msg.branch.q[1]) f1=[$(msg.branch.flags[1])]\n");
        }"#,
    );
    assert_eq!(
        l,
        vec![
            "0=sip:frank@example.com ru=sip:frank@example.com f0=[]\n",
            "1=sip:carol@example.com du=sip:proxy.example.com q=0.7 f1=[NAT]\n",
            "2=sip:erin@example.com q=\n",
            "du=<null>\n",
            "$msg.branch: no such branch to assign\n",
            "$msg.branch.flags: unknown flag in `NOSUCH`\n",
            "last=2 1=sip:carol@example.com q=0.7 f1=[NAT]\n",
        ]
    );
}

#[test]
fn branch_flags_by_name_are_per_branch() {
    let l = logs(
        r#"route {
            setbflag("NAT");
            append_msg_branch("sip:carol@example.com");
            $msg.branch.flag(VIDEO) = true;
            $(msg.branch.flag(NAT)[1]) = 1;
            $(msg.branch.flag(NAT)[0]) = false;
            xlog("0=$(msg.branch.flag(NAT)[0]) 1=$(msg.branch.flag(NAT)[1]) v=$msg.branch.flag(VIDEO) v0=$(msg.branch.flag(VIDEO)[0]) none=$(msg.branch.flag(NAT)[5])\n");
            if (isbflagset("NAT")) xlog("ruri NAT still set\n"); else xlog("ruri NAT cleared\n");
            $(msg.branch.flag(NAT)[7]) = 1;
            xlog("legacy=$branch.flag(VIDEO) legacy0=$(branch.flag(NAT)[0])\n");
        }"#,
    );
    assert_eq!(
        l,
        [
            "0=0 1=1 v=1 v0=0 none=<null>\n",
            "ruri NAT cleared\n",
            "$msg.branch.flag: no such branch to assign\n",
            "legacy=1 legacy0=1\n",
        ]
    );
}

/// What a new branch takes from the R-URI branch (OpenSIPS core_cmds.c): `append_msg_branch`
/// its URI and q only, unless `inherite`; `append_branch_old` the `$du` and flags, and without
/// a URI the R-URI branch itself, whose `$du`, flags and q are then reset.
#[test]
fn appended_branches_inherit_as_opensips_says() {
    let l = logs(
        r#"route {
            $du = "sip:proxy.example.com";
            $ru_q = 700;
            setbflag("NAT");
            append_msg_branch("sip:plain@example.com");
            append_msg_branch("sip:heir@example.com", , "inherite");
            append_branch_old("sip:old@example.com", "0.2");
            xlog("1=$(msg.branch.duri[1])/$(msg.branch.flag(NAT)[1])/$(msg.branch.q[1]) 2=$(msg.branch.duri[2])/$(msg.branch.flag(NAT)[2])/$(msg.branch.q[2]) 3=$(msg.branch.duri[3])/$(msg.branch.flag(NAT)[3])/$(msg.branch.q[3])\n");
            append_branch_old();
            xlog("4=$(msg.branch.uri[4])/$(msg.branch.duri[4])/$(msg.branch.flag(NAT)[4])/$(msg.branch.q[4]) du=$du nat=$(msg.branch.flag(NAT)[0]) q=$ru_q\n");
        }"#,
    );
    assert_eq!(
        l,
        [
            "1=<null>/0/ 2=sip:proxy.example.com/1/0.7 3=sip:proxy.example.com/1/0.2\n",
            "4=sip:bob@biloxi.com/sip:proxy.example.com/1/0.7 du=<null> nat=0 q=-1\n",
        ]
    );
}

/// `$(msg.branch.attr(NAME)[$var])`: the branch a variable names, walked in a loop.
#[test]
fn attributes_read_at_an_index_from_a_variable() {
    let l = logs(
        r#"route {
            $msg.branch.attr(who) = "ruri";
            $msg.branch = "sip:carol@example.com";
            $msg.branch.attr(who) = "carol";
            $var(i) = 0;
            while ($(msg.branch.uri[$var(i)]) != NULL) {
                xlog("$var(i): $(msg.branch.uri[$var(i)]) who=$(msg.branch.attr(who)[$var(i)])\n");
                $var(i) = $var(i) + 1;
            }
            $var(i) = "x";
            xlog("bad=$(msg.branch.attr(who)[$var(i)])\n");
        }"#,
    );
    assert_eq!(
        l,
        [
            "0: sip:bob@biloxi.com who=ruri\n",
            "1: sip:carol@example.com who=carol\n",
            "bad=<null>\n",
        ]
    );
}
