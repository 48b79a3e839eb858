//! b2b_logic's "top hiding" scenario between two SIPp instances (OpenSIPS' sipssert
//! b2b/25.top-hiding and b2b/27.top-hiding-reject, scenarios written here): a full call and a
//! rejected one both succeed, each side seeing only rsips.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::Rsips;

/// The sipssert top hiding config, with our socket (`PORT`).
const TOP_HIDING: &str = include_str!("sipp/b2b_top_hiding.cfg");

/// SIPp's caller for the top hiding scenario: the 200 must come in our dialog (`tag=B2B.`),
/// then ACK and BYE (`reject`: a 486 is expected instead, and ACKed).
fn sipp_uac(reject: bool) -> String {
    let answer = if reject {
        r#"<recv response="486" rtd="true">
    <action>
      <ereg regexp="tag=B2B\." search_in="hdr" header="To:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
      From: <sip:alice@atlanta.example>;tag=[call_number]
      To: <sip:[service]@biloxi.example>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>"#
    } else {
        r#"<recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true">
    <action>
      <ereg regexp="tag=B2B\." search_in="hdr" header="To:" check_it="true" assign_to="dummy"/>
      <ereg regexp="," search_in="hdr" header="Via:" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp="sip:127\.0\.0\.1:[0-9]+" search_in="hdr" header="Contact:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@atlanta.example>;tag=[call_number]
      To: <sip:[service]@biloxi.example>[peer_tag_param]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="300"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@atlanta.example>;tag=[call_number]
      To: <sip:[service]@biloxi.example>[peer_tag_param]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>"#
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="b2b caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@atlanta.example>;tag=[call_number]
      To: <sip:[service]@biloxi.example>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:alice@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  {answer}
  <Reference variables="dummy"/>
</scenario>
"#
    )
}

/// SIPp's callee: the INVITE must come in a dialog of rsips' own (Call-ID `B2B.`, one Via);
/// it rings and answers (`reject`: 486), then takes the ACK and rsips' BYE.
fn sipp_uas(reject: bool) -> String {
    let rest = if reject {
        r#"<send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>"#
    } else {
        r#"<send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
    ]]>
  </send>
  <recv request="ACK">
    <action>
      <ereg regexp="^[[:space:]]*B2B\." search_in="hdr" header="Call-ID:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <recv request="BYE">
    <action>
      <ereg regexp="^[[:space:]]*B2B\." search_in="hdr" header="Call-ID:" check_it="true" assign_to="dummy"/>
      <ereg regexp="tag=B2B\." search_in="hdr" header="From:" check_it="true" assign_to="dummy"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="500"/>"#
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="b2b callee">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^[[:space:]]*B2B\." search_in="hdr" header="Call-ID:" check_it="true" assign_to="dummy"/>
      <ereg regexp="," search_in="hdr" header="Via:" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp=".+" search_in="hdr" header="Via:" occurence="2" check_it_inverse="true" assign_to="dummy"/>
      <ereg regexp=".+" search_in="hdr" header="Record-Route:" check_it_inverse="true" assign_to="dummy"/>
    </action>
  </recv>
  {rest}
  <Reference variables="dummy"/>
</scenario>
"#
    )
}

/// One call between two SIPp instances through the top hiding scenario; both must succeed.
fn sipp_call(name: &str, reject: bool) {
    let port = common::free_port();
    let [uas_port, uac_port] = common::free_ports::<2>();
    let dir = common::test_dir("b2b-sipp", name);
    let rsips = Rsips::start(&dir, &TOP_HIDING.replace("PORT", &port.to_string()));
    std::fs::write(dir.join("uac.xml"), sipp_uac(reject)).unwrap();
    std::fs::write(dir.join("uas.xml"), sipp_uas(reject)).unwrap();
    let uas = common::sipp()
        .args([
            "-sf",
            "uas.xml",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
        ])
        .args([
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-trace_err",
        ])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut uas = common::Kill(uas);
    std::thread::sleep(Duration::from_millis(300));
    let uac = common::sipp()
        .args([
            "-sf",
            "uac.xml",
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port.to_string(),
        ])
        .args(["-s", "bob", &format!("127.0.0.1:{uas_port}")])
        .args(["-rsa", &format!("127.0.0.1:{port}")])
        .args([
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-trace_err",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let errors = |who: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(who) && n.ends_with("errors.log")
            })
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    };
    assert!(
        uac.status.success(),
        "sipp uac: {}\n{}\nrsips:\n{}",
        String::from_utf8_lossy(&uac.stdout),
        errors("uac"),
        rsips.log()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = uas.0.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "sipp uas did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "sipp uas: {}\nrsips:\n{}",
        errors("uas"),
        rsips.log()
    );
}

#[test]
fn sipp_top_hiding_call() {
    sipp_call("call", false);
}

#[test]
fn sipp_top_hiding_rejected_call() {
    sipp_call("reject", true);
}
