//! The OpenSIPS `dispatcher` module: destination sets loaded from a database table (any
//! `db_url` the `db` crate opens; `text://` with db_text), chosen per request by an algorithm
//! (`ds_select_dst`/`ds_select_domain`), walked on failure (`ds_next_dst`), marked down and up
//! by the script, by OPTIONS probes and by the MI, and reloaded at runtime without a restart
//! (`dispatcher:reload` swaps in the new sets whole, keeping the states the old ones had).
#![forbid(unsafe_code)]

pub mod mi;
pub mod partition;
pub mod probe;
pub mod script;
pub mod sets;

use engine::{FnSpec, ModuleSpec, Param, ParamType, Routes};

pub use partition::{Partition, partitions, start};

use ParamType::{Int, Str};

const SELECTING: Routes = Routes::REQUEST
    .or(Routes::BRANCH)
    .or(Routes::FAILURE)
    .or(Routes::LOCAL);
const REQ_FAIL: Routes = Routes::REQUEST.or(Routes::FAILURE);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "dispatcher",
    functions: &[
        FnSpec {
            name: "ds_select_dst",
            params: &[
                (Param::Int, false),
                (Param::Int, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Int, true),
            ],
            routes: SELECTING,
            run: script::ds_select_dst,
        },
        FnSpec {
            name: "ds_select_domain",
            params: &[
                (Param::Int, false),
                (Param::Int, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::Int, true),
            ],
            routes: SELECTING,
            run: script::ds_select_domain,
        },
        FnSpec {
            name: "ds_next_dst",
            params: &[(Param::Str, true)],
            routes: REQ_FAIL,
            run: script::ds_next_dst,
        },
        FnSpec {
            name: "ds_next_domain",
            params: &[(Param::Str, true)],
            routes: REQ_FAIL,
            run: script::ds_next_domain,
        },
        FnSpec {
            name: "ds_mark_dst",
            params: &[(Param::Str, true), (Param::Str, true)],
            routes: REQ_FAIL,
            run: script::ds_mark_dst,
        },
        FnSpec {
            name: "ds_is_in_list",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Int, true),
                (Param::Str, true),
                (Param::Int, true),
                (Param::Str, true),
            ],
            routes: SELECTING.or(Routes::ONREPLY),
            run: script::ds_is_in_list,
        },
        FnSpec {
            name: "ds_count",
            params: &[
                (Param::Int, false),
                (Param::Checked(&script::COUNT_FILTER), false),
                (Param::Var, false),
                (Param::Str, true),
            ],
            routes: SELECTING.or(Routes::TIMER).or(Routes::EVENT),
            run: script::ds_count,
        },
        FnSpec {
            name: "ds_push_script_attrs",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Int, false),
                (Param::Int, true),
                (Param::Str, true),
            ],
            routes: Routes::ALL,
            run: script::ds_push_script_attrs,
        },
        FnSpec {
            name: "ds_get_script_attrs",
            params: &[
                (Param::Str, false),
                (Param::Int, false),
                (Param::Str, true),
                (Param::Var, false),
            ],
            routes: Routes::ALL,
            run: script::ds_get_script_attrs,
        },
    ],
    params: &[
        ("db_url", Str),
        ("table_name", Str),
        ("setid_col", Str),
        ("destination_col", Str),
        ("state_col", Str),
        ("weight_col", Str),
        ("priority_col", Str),
        ("attrs_col", Str),
        ("socket_col", Str),
        ("probe_mode_col", Str),
        ("description_col", Str),
        ("partition", Str),
        ("dst_avp", Str),
        ("grp_avp", Str),
        ("cnt_avp", Str),
        ("sock_avp", Str),
        ("attrs_avp", Str),
        ("script_attrs_avp", Str),
        ("algo_route", ParamType::CheckedStr(&partition::UNSUPPORTED)),
        ("hash_pvar", Str),
        ("setid_pvar", ParamType::CheckedStr(&partition::UNSUPPORTED)),
        (
            "pvar_algo_pattern",
            ParamType::CheckedStr(&partition::UNSUPPORTED),
        ),
        ("ds_ping_method", Str),
        ("ds_ping_from", Str),
        ("ds_ping_interval", Int),
        ("ds_ping_maxfwd", Int),
        ("ds_probing_sock", Str),
        ("ds_probing_threshold", Int),
        ("ds_probing_threshhold", Int),
        ("ds_probing_mode", Int),
        ("ds_probing_list", Str),
        ("ds_define_blacklist", Str),
        ("options_reply_codes", Str),
        ("persistent_state", Int),
        ("cluster_id", Int),
        ("cluster_sharing_tag", Str),
        ("cluster_probing_mode", Str),
        ("fetch_freeswitch_stats", Int),
        ("max_freeswitch_weight", Int),
    ],
};
