//! MySQL/MariaDB tables of OpenSIPS 4.0 as the DB tests create them (the columns rsips reads
//! and writes), one constant per module: a test puts together the ones its config needs.

/// The `version` table every OpenSIPS table is checked against.
pub const VERSION: &str = "CREATE TABLE version (table_name CHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL, \
  CONSTRAINT t_name_idx UNIQUE (table_name));\n";

/// usrloc's `location` (v1013).
pub const LOCATION: &str = "CREATE TABLE location (contact_id BIGINT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  username CHAR(64) DEFAULT '' NOT NULL, domain CHAR(64) DEFAULT NULL, contact TEXT NOT NULL, \
  received CHAR(255) DEFAULT NULL, path CHAR(255) DEFAULT NULL, expires INT(10) UNSIGNED NOT NULL, \
  q FLOAT(10,2) DEFAULT 1.0 NOT NULL, callid CHAR(255) DEFAULT 'Default-Call-ID' NOT NULL, \
  cseq INT(11) DEFAULT 13 NOT NULL, last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL, \
  flags INT(11) DEFAULT 0 NOT NULL, cflags CHAR(255) DEFAULT NULL, user_agent CHAR(255) DEFAULT '' NOT NULL, \
  socket CHAR(64) DEFAULT NULL, methods INT(11) DEFAULT NULL, sip_instance CHAR(255) DEFAULT NULL, \
  kv_store TEXT(512) DEFAULT NULL, attr CHAR(255) DEFAULT NULL);\n";

/// acc's `acc` (v7) and `missed_calls` (v5).
pub const ACC: &str = "CREATE TABLE acc (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, method CHAR(16) DEFAULT '' NOT NULL, \
  from_tag CHAR(64) DEFAULT '' NOT NULL, to_tag CHAR(64) DEFAULT '' NOT NULL, callid CHAR(64) DEFAULT '' NOT NULL, \
  sip_code CHAR(3) DEFAULT '' NOT NULL, sip_reason CHAR(32) DEFAULT '' NOT NULL, time DATETIME NOT NULL, \
  duration INT(11) UNSIGNED DEFAULT 0 NOT NULL, ms_duration INT(11) UNSIGNED DEFAULT 0 NOT NULL, \
  setuptime INT(11) UNSIGNED DEFAULT 0 NOT NULL, created DATETIME DEFAULT NULL);\n\
CREATE TABLE missed_calls (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, method CHAR(16) DEFAULT '' NOT NULL, \
  from_tag CHAR(64) DEFAULT '' NOT NULL, to_tag CHAR(64) DEFAULT '' NOT NULL, callid CHAR(64) DEFAULT '' NOT NULL, \
  sip_code CHAR(3) DEFAULT '' NOT NULL, sip_reason CHAR(32) DEFAULT '' NOT NULL, time DATETIME NOT NULL);\n";

/// dialog's `dialog` (v12).
pub const DIALOG: &str = "CREATE TABLE dialog (dlg_id BIGINT(10) UNSIGNED PRIMARY KEY NOT NULL, callid CHAR(255) NOT NULL, \
  from_uri CHAR(255) NOT NULL, from_tag CHAR(64) NOT NULL, to_uri CHAR(255) NOT NULL, to_tag CHAR(64) NOT NULL, \
  mangled_from_uri CHAR(255) DEFAULT NULL, mangled_to_uri CHAR(255) DEFAULT NULL, \
  caller_cseq CHAR(11) NOT NULL, callee_cseq CHAR(11) NOT NULL, \
  caller_ping_cseq INT(11) UNSIGNED NOT NULL, callee_ping_cseq INT(11) UNSIGNED NOT NULL, \
  caller_route_set TEXT(512), callee_route_set TEXT(512), caller_contact CHAR(255), callee_contact CHAR(255), \
  caller_sock CHAR(64) NOT NULL, callee_sock CHAR(64) NOT NULL, state INT(11) UNSIGNED NOT NULL, \
  start_time INT(11) UNSIGNED NOT NULL, timeout INT(11) UNSIGNED NOT NULL, vars BLOB(4096) DEFAULT NULL, \
  profiles TEXT(512) DEFAULT NULL, script_flags CHAR(255) DEFAULT NULL, \
  module_flags INT(11) UNSIGNED DEFAULT 0 NOT NULL, flags INT(11) UNSIGNED DEFAULT 0 NOT NULL, \
  rt_on_answer CHAR(64) DEFAULT NULL, rt_on_timeout CHAR(64) DEFAULT NULL, rt_on_hangup CHAR(64) DEFAULT NULL);\n";

/// auth_db's `subscriber` (v8), alias_db's `dbaliases` (v2), domain's `domain` (v4).
pub const AUTH: &str = "CREATE TABLE subscriber (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  username CHAR(64) DEFAULT '' NOT NULL, domain CHAR(64) DEFAULT '' NOT NULL, password CHAR(25) DEFAULT '' NOT NULL, \
  ha1 CHAR(64) DEFAULT '' NOT NULL, ha1_sha256 CHAR(64) DEFAULT '' NOT NULL, ha1_sha512t256 CHAR(64) DEFAULT '' NOT NULL);\n\
CREATE TABLE dbaliases (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  alias_username CHAR(64) DEFAULT '' NOT NULL, alias_domain CHAR(64) DEFAULT '' NOT NULL, \
  username CHAR(64) DEFAULT '' NOT NULL, domain CHAR(64) DEFAULT '' NOT NULL);\n\
CREATE TABLE domain (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, domain CHAR(64) DEFAULT '' NOT NULL, \
  attrs CHAR(255) DEFAULT NULL, accept_subdomain INT DEFAULT 0 NOT NULL, \
  last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL);\n";

/// dialplan's `dialplan` (v5).
pub const DIALPLAN: &str = "CREATE TABLE dialplan (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, dpid INT(11) NOT NULL, \
  pr INT(11) DEFAULT 0 NOT NULL, match_op INT(11) NOT NULL, match_exp CHAR(64) NOT NULL, \
  match_flags INT(11) DEFAULT 0 NOT NULL, subst_exp CHAR(64) DEFAULT NULL, repl_exp CHAR(32) DEFAULT NULL, \
  timerec CHAR(255) DEFAULT NULL, disabled INT(11) DEFAULT 0 NOT NULL, attrs CHAR(255) DEFAULT NULL);\n";

/// drouting's tables (v6, v4, v3, v2).
pub const DROUTING: &str = "CREATE TABLE dr_gateways (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, gwid CHAR(64) NOT NULL, \
  type INT(11) UNSIGNED DEFAULT 0 NOT NULL, address CHAR(128) NOT NULL, strip INT(11) UNSIGNED DEFAULT 0 NOT NULL, \
  pri_prefix CHAR(16) DEFAULT NULL, attrs CHAR(255) DEFAULT NULL, probe_mode INT(11) UNSIGNED DEFAULT 0 NOT NULL, \
  state INT(11) UNSIGNED DEFAULT 0 NOT NULL, socket CHAR(128) DEFAULT NULL, description CHAR(128) DEFAULT NULL);\n\
CREATE TABLE dr_rules (ruleid INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, groupid CHAR(255) NOT NULL, \
  prefix CHAR(64) NOT NULL, timerec CHAR(255) DEFAULT NULL, priority INT(11) DEFAULT 0 NOT NULL, \
  routeid CHAR(255) DEFAULT NULL, gwlist CHAR(255), sort_alg CHAR(1) DEFAULT 'N' NOT NULL, \
  sort_profile INT(10) UNSIGNED DEFAULT NULL, attrs CHAR(255) DEFAULT NULL, description CHAR(128) DEFAULT NULL);\n\
CREATE TABLE dr_carriers (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, carrierid CHAR(64) NOT NULL, \
  gwlist CHAR(255) NOT NULL, flags INT(11) UNSIGNED DEFAULT 0 NOT NULL, sort_alg CHAR(1) DEFAULT 'N' NOT NULL, \
  state INT(11) UNSIGNED DEFAULT 0 NOT NULL, attrs CHAR(255) DEFAULT NULL, description CHAR(128) DEFAULT NULL);\n\
CREATE TABLE dr_groups (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, username CHAR(64) NOT NULL, \
  domain CHAR(128) DEFAULT NULL, groupid INT(11) UNSIGNED DEFAULT 0 NOT NULL, description CHAR(128) DEFAULT NULL);\n";

/// presence's `presentity` (v5), `active_watchers` (v12), `watchers` (v4) and xcap's `xcap` (v4).
pub const PRESENCE: &str = "CREATE TABLE presentity (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  username CHAR(64) NOT NULL, domain CHAR(64) NOT NULL, event CHAR(64) NOT NULL, etag CHAR(64) NOT NULL, \
  expires INT(11) NOT NULL, received_time INT(11) NOT NULL, body BLOB, extra_hdrs BLOB, sender CHAR(255), \
  CONSTRAINT presentity_idx UNIQUE (username, domain, event, etag));\n\
CREATE TABLE active_watchers (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  presentity_uri CHAR(255) NOT NULL, watcher_username CHAR(64) NOT NULL, watcher_domain CHAR(64) NOT NULL, \
  to_user CHAR(64) NOT NULL, to_domain CHAR(64) NOT NULL, event CHAR(64) DEFAULT 'presence' NOT NULL, \
  event_id CHAR(64), to_tag CHAR(64) NOT NULL, from_tag CHAR(64) NOT NULL, callid CHAR(64) NOT NULL, \
  local_cseq INT(11) NOT NULL, remote_cseq INT(11) NOT NULL, contact CHAR(255) NOT NULL, \
  record_route TEXT, expires INT(11) NOT NULL, status INT(11) DEFAULT 2 NOT NULL, reason CHAR(64), \
  version INT(11) DEFAULT 0 NOT NULL, socket_info CHAR(64) NOT NULL, local_contact CHAR(255) NOT NULL, \
  sharing_tag CHAR(32) DEFAULT NULL, \
  CONSTRAINT active_watchers_idx UNIQUE (presentity_uri, callid, to_tag, from_tag));\n\
CREATE TABLE watchers (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, \
  presentity_uri CHAR(255) NOT NULL, watcher_username CHAR(64) NOT NULL, watcher_domain CHAR(64) NOT NULL, \
  event CHAR(64) DEFAULT 'presence' NOT NULL, status INT(11) NOT NULL, reason CHAR(64), \
  inserted_time INT(11) NOT NULL, \
  CONSTRAINT watcher_idx UNIQUE (presentity_uri, watcher_username, watcher_domain, event));\n\
CREATE TABLE xcap (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL, username CHAR(64) NOT NULL, \
  domain CHAR(64) NOT NULL, doc LONGBLOB NOT NULL, doc_type INT(11) NOT NULL, etag CHAR(64) NOT NULL, \
  source INT(11) NOT NULL, doc_uri CHAR(255) NOT NULL, port INT(11) NOT NULL, \
  CONSTRAINT udd_xcap UNIQUE (username, domain, doc_type, doc_uri));\n";

/// The statements of `parts` in the `opensips` database.
pub fn mysql(parts: &[&str]) -> String {
    let mut s = String::from("USE opensips;\n");
    for p in parts {
        s.push_str(p);
    }
    s
}

/// presence's tables as db_text files (name, header line): `presentity` (v5),
/// `active_watchers` (v12), `watchers` (v4); a test adds its `version` file.
pub const DBTEXT_PRESENCE: [(&str, &str); 3] = [
    (
        "presentity",
        "id(int,auto) username(string) domain(string) event(string) etag(string) expires(int) \
         received_time(int) body(blob,null) extra_hdrs(blob,null) sender(string,null)\n",
    ),
    (
        "active_watchers",
        "id(int,auto) presentity_uri(string) watcher_username(string) watcher_domain(string) \
         to_user(string) to_domain(string) event(string) event_id(string,null) to_tag(string) \
         from_tag(string) callid(string) local_cseq(int) remote_cseq(int) contact(string) \
         record_route(string,null) expires(int) status(int) reason(string,null) version(int) \
         socket_info(string) local_contact(string) sharing_tag(string,null)\n",
    ),
    (
        "watchers",
        "id(int,auto) presentity_uri(string) watcher_username(string) watcher_domain(string) \
         event(string) status(int) reason(string,null) inserted_time(int)\n",
    ),
];
