//! The messages of CRIU's RPC protocol (`images/rpc.proto` of CRIU, proto2)
//! that berth sends and reads, declared with prost's derive: only the
//! fields berth uses, under CRIU's tag numbers. Unknown fields in CRIU's
//! answers are skipped by the decoder, so a newer CRIU still parses.

use prost::Message;

/// `criu_req_type`.
pub mod req_type {
    pub const DUMP: i32 = 1;
    pub const RESTORE: i32 = 2;
    pub const PRE_DUMP: i32 = 4;
    pub const NOTIFY: i32 = 6;
    pub const FEATURE_CHECK: i32 = 9;
    pub const VERSION: i32 = 10;

    pub fn name(t: i32) -> &'static str {
        match t {
            DUMP => "dump",
            RESTORE => "restore",
            PRE_DUMP => "pre-dump",
            NOTIFY => "notify",
            FEATURE_CHECK => "feature check",
            VERSION => "version",
            _ => "request",
        }
    }
}

/// `criu_cg_mode`.
pub mod cg_mode {
    pub const IGNORE: i32 = 0;
    pub const SOFT: i32 = 3;
    pub const FULL: i32 = 4;
    pub const STRICT: i32 = 5;
    pub const DEFAULT: i32 = 6;
}

#[derive(Clone, PartialEq, Message)]
pub struct PageServerInfo {
    #[prost(string, optional, tag = "1")]
    pub address: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub port: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExtMountMap {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub val: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct JoinNamespace {
    #[prost(string, required, tag = "1")]
    pub ns: String,
    #[prost(string, required, tag = "2")]
    pub ns_file: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct InheritFd {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(int32, required, tag = "2")]
    pub fd: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct CgroupRoot {
    #[prost(string, optional, tag = "1")]
    pub ctrl: Option<String>,
    #[prost(string, required, tag = "2")]
    pub path: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Opts {
    #[prost(int32, required, tag = "1")]
    pub images_dir_fd: i32,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub evasive_devices: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub log_level: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub log_file: Option<String>,
    #[prost(message, optional, tag = "11")]
    pub ps: Option<PageServerInfo>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: Option<String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: Option<bool>,
    #[prost(bool, optional, tag = "16")]
    pub auto_dedup: Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: Option<i32>,
    #[prost(message, repeated, tag = "23")]
    pub ext_mnt: Vec<ExtMountMap>,
    #[prost(bool, optional, tag = "24")]
    pub manage_cgroups: Option<bool>,
    #[prost(message, repeated, tag = "25")]
    pub cg_root: Vec<CgroupRoot>,
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: Option<bool>,
    #[prost(message, repeated, tag = "27")]
    pub inherit_fd: Vec<InheritFd>,
    #[prost(int32, optional, tag = "34")]
    pub manage_cgroups_mode: Option<i32>,
    #[prost(string, repeated, tag = "37")]
    pub external: Vec<String>,
    #[prost(uint32, optional, tag = "38")]
    pub empty_ns: Option<u32>,
    #[prost(message, repeated, tag = "39")]
    pub join_ns: Vec<JoinNamespace>,
    #[prost(string, optional, tag = "44")]
    pub freeze_cgroup: Option<String>,
    #[prost(bool, optional, tag = "48")]
    pub lazy_pages: Option<bool>,
    #[prost(int32, optional, tag = "49")]
    pub status_fd: Option<i32>,
    #[prost(bool, optional, tag = "50")]
    pub orphan_pts_master: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Features {
    #[prost(bool, optional, tag = "1")]
    pub mem_track: Option<bool>,
    #[prost(bool, optional, tag = "2")]
    pub lazy_pages: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    pub pidfd_store: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Request {
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: Option<Opts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: Option<bool>,
    #[prost(message, optional, tag = "5")]
    pub features: Option<Features>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Notify {
    #[prost(string, optional, tag = "1")]
    pub script: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Version {
    #[prost(int32, required, tag = "1")]
    pub major_number: i32,
    #[prost(int32, required, tag = "2")]
    pub minor_number: i32,
    #[prost(string, optional, tag = "3")]
    pub gitid: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub sublevel: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "4")]
    pub restore: Option<RestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: Option<Notify>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: Option<i32>,
    #[prost(message, optional, tag = "8")]
    pub features: Option<Features>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub version: Option<Version>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_request_is_encoded_as_criu_reads_it() {
        let req = Request {
            r#type: req_type::VERSION,
            ..Default::default()
        };
        // Field 1, varint, value 10.
        assert_eq!(req.encode_to_vec(), vec![0x08, 10]);
    }

    #[test]
    fn a_response_with_fields_berth_does_not_know_decodes() {
        // type=VERSION, success=true, status (field 11)=0, version{4,1}.
        let bytes = [0x08, 10, 0x10, 1, 0x58, 0, 0x52, 4, 0x08, 4, 0x10, 1];
        let resp = Response::decode(&bytes[..]).unwrap();
        assert!(resp.success);
        let v = resp.version.unwrap();
        assert_eq!((v.major_number, v.minor_number), (4, 1));
    }
}
