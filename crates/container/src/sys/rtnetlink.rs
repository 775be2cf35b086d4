//! The few rtnetlink requests linux.netDevices needs (find or list links,
//! set one up or down, move and rename it into another network namespace,
//! list and add its addresses), written by hand on a NETLINK_ROUTE socket.
//! Each message is a fixed header and a few attributes. The crates that
//! speak rtnetlink either need an async runtime (rtnetlink: tokio), which
//! berth must not run where it forks, or bring a message model far larger
//! than these seven requests: neli 0.7.5, the synchronous one, would add
//! ten crates to berth's (neli, neli-proc-macros, parking_lot and its four,
//! byteorder, log, cfg-if) for what is here about 250 lines.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::{Context, Error, Result};

const HEADER: usize = 16;
const IFINFOMSG: usize = 16;
const IFADDRMSG: usize = 8;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_F_PERMANENT: u8 = 0x80;
const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 1;

/// An address of a link, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    family: u8,
    prefix_len: u8,
    flags: u8,
    scope: u8,
    /// IFA_LOCAL where the kernel gives it (IPv4), else IFA_ADDRESS.
    local: Vec<u8>,
    /// IFA_ADDRESS: the peer of a point-to-point IPv4 address, else the
    /// address itself.
    address: Vec<u8>,
}

impl Address {
    /// A permanent address of global scope: one the user configured and
    /// that means the same in another namespace (as runc moves them).
    pub fn is_global_and_permanent(&self) -> bool {
        self.flags & IFA_F_PERMANENT != 0 && self.scope == RT_SCOPE_UNIVERSE
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match <[u8; 4]>::try_from(self.local.as_slice()) {
            Ok(v4) => write!(f, "{}", std::net::Ipv4Addr::from(v4))?,
            Err(_) => match <[u8; 16]>::try_from(self.local.as_slice()) {
                Ok(v6) => write!(f, "{}", std::net::Ipv6Addr::from(v6))?,
                Err(_) => write!(f, "{:?}", self.local)?,
            },
        }
        write!(f, "/{}", self.prefix_len)
    }
}

/// A NETLINK_ROUTE socket of the network namespace it was made in.
pub struct Route {
    socket: OwnedFd,
    seq: u32,
}

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn name_attr(buf: &mut Vec<u8>, name: &str) {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    attr(buf, IFLA_IFNAME, &bytes);
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut m = vec![0u8; 4]; // family AF_UNSPEC, pad, type
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&change.to_ne_bytes());
    m
}

/// The attributes after a fixed-size message body: (type, payload).
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    out
}

impl Route {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Route> {
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "rtnetlink socket");
        }
        // SAFETY: a descriptor just made and owned by no one else.
        let socket = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Route { socket, seq: 0 })
    }

    /// A socket in the network namespace `netns` (berth returns to its own
    /// at once; the socket stays in `netns`).
    pub fn open_in(netns: BorrowedFd) -> Result<Route> {
        let own = rustix::fs::open(
            "/proc/thread-self/ns/net",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ctx(|| "open berth's network namespace")?;
        rustix::thread::move_into_link_name_space(
            netns,
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .ctx(|| "enter the container's network namespace")?;
        let route = Route::open();
        rustix::thread::move_into_link_name_space(
            own.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .ctx(|| "return to berth's network namespace")?;
        route
    }

    fn send(&mut self, kind: u16, flags: u16, body: &[u8]) -> Result<u32> {
        self.seq += 1;
        let mut msg = Vec::with_capacity(HEADER + body.len());
        msg.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        rustix::net::send(&self.socket, &msg, rustix::net::SendFlags::empty())
            .ctx(|| "rtnetlink send")?;
        Ok(self.seq)
    }

    /// The replies to request `seq`, as (type, body), up to its ACK or
    /// NLMSG_DONE; an error reply is returned as the errno.
    fn replies(&mut self, seq: u32) -> Result<Vec<(u16, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = loop {
                match rustix::net::recv(&self.socket, &mut buf, rustix::net::RecvFlags::empty()) {
                    Ok((n, _)) => break n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e).ctx(|| "rtnetlink receive"),
                }
            };
            let mut data = &buf[..n];
            while data.len() >= HEADER {
                let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let reply_seq = u32::from_ne_bytes(data[8..12].try_into().unwrap());
                if len < HEADER || len > data.len() {
                    return Err(Error::Message("rtnetlink: a truncated reply".into()));
                }
                let body = &data[HEADER..len];
                data = &data[len.next_multiple_of(4).min(data.len())..];
                if reply_seq != seq {
                    continue;
                }
                match i32::from(kind) {
                    libc::NLMSG_DONE => return Ok(out),
                    libc::NLMSG_ERROR => {
                        let errno = i32::from_ne_bytes(body[0..4].try_into().unwrap());
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(Error::os("rtnetlink", -errno));
                    }
                    _ => out.push((kind, body.to_vec())),
                }
            }
        }
    }

    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> Result<Vec<(u16, Vec<u8>)>> {
        let seq = self.send(kind, flags | libc::NLM_F_ACK as u16, body)?;
        self.replies(seq)
    }

    /// The index of the link named `name`.
    pub fn link_index(&mut self, name: &str) -> Result<i32> {
        let mut body = ifinfomsg(0, 0, 0);
        name_attr(&mut body, name);
        let replies = self.request(libc::RTM_GETLINK, 0, &body)?;
        replies
            .iter()
            .find(|(kind, body)| *kind == libc::RTM_NEWLINK && body.len() >= IFINFOMSG)
            .map(|(_, body)| i32::from_ne_bytes(body[4..8].try_into().unwrap()))
            .ok_or_else(|| Error::Message(format!("rtnetlink: no link {name:?} in the reply")))
    }

    /// Every link, as (index, name).
    pub fn links(&mut self) -> Result<Vec<(i32, String)>> {
        let body = ifinfomsg(0, 0, 0);
        let seq = self.send(libc::RTM_GETLINK, libc::NLM_F_DUMP as u16, &body)?;
        let mut out = Vec::new();
        for (kind, body) in self.replies(seq)? {
            if kind != libc::RTM_NEWLINK || body.len() < IFINFOMSG {
                continue;
            }
            let index = i32::from_ne_bytes(body[4..8].try_into().unwrap());
            let name = attributes(&body[IFINFOMSG..])
                .into_iter()
                .find(|(kind, _)| *kind == IFLA_IFNAME)
                .map(|(_, v)| {
                    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into_owned()
                });
            if let Some(name) = name {
                out.push((index, name));
            }
        }
        Ok(out)
    }

    /// Sets link `index` up or down.
    pub fn set_up(&mut self, index: i32, up: bool) -> Result<()> {
        let body = ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP);
        self.request(libc::RTM_NEWLINK, 0, &body).map(drop)
    }

    /// Moves link `index` into the network namespace `netns`, named `name`
    /// there (one request: no moment with a clashing name).
    pub fn move_to(&mut self, index: i32, netns: BorrowedFd, name: &str) -> Result<()> {
        let mut body = ifinfomsg(index, 0, 0);
        attr(
            &mut body,
            IFLA_NET_NS_FD,
            &(netns.as_raw_fd() as u32).to_ne_bytes(),
        );
        name_attr(&mut body, name);
        self.request(libc::RTM_NEWLINK, 0, &body).map(drop)
    }

    /// The addresses of link `index`.
    pub fn addresses(&mut self, index: i32) -> Result<Vec<Address>> {
        let body = [0u8; IFADDRMSG]; // every family
        let seq = self.send(libc::RTM_GETADDR, libc::NLM_F_DUMP as u16, &body)?;
        let mut out = Vec::new();
        for (kind, body) in self.replies(seq)? {
            if kind != libc::RTM_NEWADDR || body.len() < IFADDRMSG {
                continue;
            }
            if i32::from_ne_bytes(body[4..8].try_into().unwrap()) != index {
                continue;
            }
            let attrs = attributes(&body[IFADDRMSG..]);
            let get = |want| {
                attrs
                    .iter()
                    .find(|(kind, _)| *kind == want)
                    .map(|(_, v)| v.to_vec())
            };
            let Some(address) = get(IFA_ADDRESS) else {
                continue;
            };
            out.push(Address {
                family: body[0],
                prefix_len: body[1],
                flags: body[2],
                scope: body[3],
                local: get(IFA_LOCAL).unwrap_or_else(|| address.clone()),
                address,
            });
        }
        Ok(out)
    }

    /// Adds `address` to link `index`, global in scope; an IPv4 address
    /// gets its broadcast address, as `ip address add` gives it.
    pub fn add_address(&mut self, index: i32, address: &Address) -> Result<()> {
        let mut body = vec![address.family, address.prefix_len, 0, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&index.to_ne_bytes());
        attr(&mut body, IFA_LOCAL, &address.local);
        attr(&mut body, IFA_ADDRESS, &address.address);
        if let Ok(v4) = <[u8; 4]>::try_from(address.local.as_slice()) {
            if address.prefix_len < 31 && address.local == address.address {
                let host_bits = u32::MAX >> address.prefix_len;
                let broadcast = u32::from_be_bytes(v4) | host_bits;
                attr(&mut body, IFA_BROADCAST, &broadcast.to_be_bytes());
            }
        }
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        self.request(libc::RTM_NEWADDR, flags, &body).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_read_back() {
        let mut buf = Vec::new();
        name_attr(&mut buf, "eth0");
        attr(&mut buf, IFLA_NET_NS_FD, &7u32.to_ne_bytes());
        assert_eq!(buf.len(), 12 + 8);
        let attrs = attributes(&buf);
        assert_eq!(attrs[0], (IFLA_IFNAME, &b"eth0\0"[..]));
        assert_eq!(attrs[1], (IFLA_NET_NS_FD, &7u32.to_ne_bytes()[..]));
    }

    #[test]
    fn the_loopback_link_and_its_address_are_found() {
        let mut route = Route::open().unwrap();
        let lo = route.link_index("lo").unwrap();
        assert!(lo > 0);
        let addresses = route.addresses(lo).unwrap();
        let v4: Vec<String> = addresses
            .iter()
            .filter(|a| a.family == libc::AF_INET as u8)
            .map(|a| a.to_string())
            .collect();
        assert_eq!(v4, ["127.0.0.1/8"]);
        // Host scope: not moved with the link.
        assert!(!addresses[0].is_global_and_permanent());
        let err = route.link_index("no-such-link0").unwrap_err().to_string();
        assert!(err.contains("no such device"), "{err}");
        let links = route.links().unwrap();
        assert!(links.contains(&(lo, "lo".to_string())), "{links:?}");
    }
}
