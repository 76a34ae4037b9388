//! Readings from this machine's operating system: resident memory and CPU time of a process
//! tree, the kernel's TCP socket memory, our own usage, the fd limit. (A server's `/metrics`
//! page is read by [`server_probe`](crate::server_probe).)

use std::collections::BTreeMap;
use std::fs;
use std::sync::{Arc, Mutex};

/// The size of a memory page.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

/// Clock ticks per second, the unit of CPU times in `/proc/PID/stat`.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as f64 } else { 100.0 }
}

/// `pid` and all its descendants (children listed in `/proc/PID/task/*/children`).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < 4096 {
        let p = out[i];
        i += 1;
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(children) = fs::read_to_string(task.path().join("children")) {
                out.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

/// Every process of the trees of `pids`, each once (a pid given twice, or one inside another's
/// tree, is counted once).
pub fn process_trees(pids: &[u32]) -> Vec<u32> {
    let mut all: Vec<u32> = pids.iter().flat_map(|&p| process_tree(p)).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Resident memory of `pid` and its descendants in bytes; `None` if `pid` does not exist.
pub fn tree_rss_bytes(pid: u32) -> Option<u64> {
    trees_rss_bytes(&[pid])
}

/// Resident memory of the processes of `pids` and their descendants, summed, in bytes (each
/// process once); `None` if none of them exists.
pub fn trees_rss_bytes(pids: &[u32]) -> Option<u64> {
    let page = page_size();
    let mut total = 0;
    let mut found = false;
    for p in process_trees(pids) {
        if let Ok(statm) = fs::read_to_string(format!("/proc/{p}/statm")) {
            let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
            total += resident * page;
            found = true;
        }
    }
    found.then_some(total)
}

/// User plus system CPU seconds of `pid` and its descendants.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    trees_cpu_seconds(&[pid])
}

/// User plus system CPU seconds of the processes of `pids` and their descendants, summed
/// (each process once); `None` if none of them exists.
pub fn trees_cpu_seconds(pids: &[u32]) -> Option<f64> {
    let ticks: Vec<u64> = process_trees(pids)
        .into_iter()
        .filter_map(process_cpu_ticks)
        .collect();
    (!ticks.is_empty()).then(|| ticks.iter().sum::<u64>() as f64 / clock_ticks())
}

/// User plus system CPU time of one process, in clock ticks; `None` if it does not exist.
fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The server processes of `--server-pid` (one, or every node of a cluster) and the CPU each
/// process of their trees was last seen to have used.
#[derive(Debug, Clone)]
pub struct ServerPids {
    /// The pids given; their trees are read at every reading.
    roots: Vec<u32>,
    /// The last CPU ticks read per process. A process that exits (a node killed mid-run, a
    /// child that ended) keeps its last reading, so the cluster's CPU never goes back.
    last_ticks: Arc<Mutex<BTreeMap<u32, u64>>>,
}

impl ServerPids {
    /// The trees of `roots`.
    pub fn new(roots: Vec<u32>) -> Self {
        ServerPids {
            roots,
            last_ticks: Arc::default(),
        }
    }

    /// Resident memory of every live process of the trees, each once.
    pub fn rss_bytes(&self) -> Option<u64> {
        trees_rss_bytes(&self.roots)
    }

    /// CPU seconds of every process of the trees seen so far, each once, those gone included
    /// at their last reading; `None` before any was found.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let mut last = self.last_ticks.lock().unwrap_or_else(|e| e.into_inner());
        for p in process_trees(&self.roots) {
            if let Some(ticks) = process_cpu_ticks(p) {
                last.insert(p, ticks);
            }
        }
        (!last.is_empty()).then(|| last.values().sum::<u64>() as f64 / clock_ticks())
    }
}

/// Kernel memory held by TCP sockets, bytes: the socket buffers (`mem` of the `TCP:` line of
/// `/proc/net/sockstat`, which is 0 for idle sockets) plus, when `/proc/slabinfo` is readable,
/// the slab objects every socket holds (`TCP`, `TCPv6`, `sock_inode_cache`,
/// `request_sock_TCP`). On loopback it includes both ends of every connection.
pub fn tcp_socket_memory_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/net/sockstat").ok()?;
    let buffers = parse_sockstat_mem(&text)? * page_size();
    let slab = fs::read_to_string("/proc/slabinfo")
        .ok()
        .map_or(0, |t| parse_slab_bytes(&t, SOCKET_SLABS));
    Some(buffers + slab)
}

/// The slab caches whose objects each TCP socket holds.
const SOCKET_SLABS: &[&str] = &["TCP", "TCPv6", "sock_inode_cache", "request_sock_TCP"];

/// Bytes of active objects in the slab caches named `names` (`active_objs * objsize`).
fn parse_slab_bytes(text: &str, names: &[&str]) -> u64 {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let name = it.next()?;
            if !names.contains(&name) {
                return None;
            }
            let active: u64 = it.next()?.parse().ok()?;
            let _total = it.next()?;
            let size: u64 = it.next()?.parse().ok()?;
            Some(active * size)
        })
        .sum()
}

/// The `mem` value (pages) of the `TCP:` line.
fn parse_sockstat_mem(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(word) = it.next() {
        if word == "mem" {
            return it.next()?.parse().ok();
        }
    }
    None
}

/// This process's user plus system CPU seconds.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// This process's resident memory in bytes.
pub fn self_rss_bytes() -> u64 {
    tree_rss_bytes(std::process::id()).unwrap_or(0)
}

/// The soft and hard `RLIMIT_NOFILE`, after raising the soft limit to the hard one.
pub fn raise_fd_limit() -> (u64, u64) {
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (1024, 1024);
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        (lim.rlim_cur as u64, lim.rlim_max as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_probe::ServerProbe;
    use std::time::Duration;

    #[test]
    fn sockstat() {
        let text =
            "sockets: used 300\nTCP: inuse 5 orphan 0 tw 2 alloc 9 mem 17\nUDP: inuse 1 mem 3\n";
        assert_eq!(parse_sockstat_mem(text), Some(17));
        assert_eq!(parse_sockstat_mem("UDP: inuse 1 mem 3\n"), None);
    }

    #[test]
    fn slabinfo() {
        let text = "slabinfo - version: 2.1\n# name <active_objs> ...\nTCP 80 130 2368 13 8 : tunables 0 0 0\ntw_sock_TCP 35776 35776 256 16 1\nsock_inode_cache 253 342 832 19 4\n";
        assert_eq!(parse_slab_bytes(text, SOCKET_SLABS), 80 * 2368 + 253 * 832);
    }

    #[test]
    fn own_process() {
        let me = std::process::id();
        assert!(tree_rss_bytes(me).unwrap() > 0);
        assert!(tree_cpu_seconds(me).is_some());
        assert!(tree_rss_bytes(u32::MAX - 1).is_none());
    }

    /// A child process of the test, killed and reaped when dropped (also when a test fails).
    struct TestChild(std::process::Child);

    impl TestChild {
        /// Runs `sh -c script`.
        fn sh(script: &str) -> TestChild {
            TestChild(
                std::process::Command::new("sh")
                    .args(["-c", script])
                    .spawn()
                    .unwrap(),
            )
        }

        /// Its pid.
        fn id(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for TestChild {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Several pids sum their trees, each process once: two children of ours add up, a pid
    /// given twice or inside another's tree is not counted again. Regression test for issue
    /// 11 (server memory of one pid only).
    #[test]
    fn several_trees_sum_each_process_once() {
        let (a, b) = (
            TestChild::sh("exec sleep 30"),
            TestChild::sh("exec sleep 30"),
        );
        let (pa, pb) = (a.id(), b.id());
        let rss = |pids: &[u32]| trees_rss_bytes(pids);
        let probe = ServerProbe::Pids(ServerPids::new(vec![pa, pb]));
        // A new process maps its pages as it starts: compare readings taken while neither
        // child's memory moved.
        let stable = (0..250).find_map(|_| {
            let (ra, rb) = (rss(&[pa]).unwrap(), rss(&[pb]).unwrap());
            let readings = (
                rss(&[pa, pb]),
                rss(&[pa, pb, pa]),
                rss(&[u32::MAX - 1, pa]),
                probe.rss_bytes(),
            );
            let still = (rss(&[pa]).unwrap(), rss(&[pb]).unwrap()) == (ra, rb);
            if !still {
                std::thread::sleep(Duration::from_millis(20));
            }
            still.then_some((ra, rb, readings))
        });
        let (ra, rb, readings) = stable.expect("the children's memory never held still");
        assert!(ra > 0 && rb > 0);
        let sum = Some(ra + rb);
        assert_eq!(readings, (sum, sum, Some(ra), sum));
        assert_eq!(trees_rss_bytes(&[u32::MAX - 1]), None);
        let me = std::process::id();
        assert_eq!(process_trees(&[me, pa]), process_trees(&[me]));
        assert!(probe.cpu_seconds().is_some());
    }

    /// A node that exits mid-run keeps the CPU it used in the sum: the cluster's CPU never goes
    /// back. Regression test for `--server-pid` repeated (a node killed in a failover run took
    /// its CPU out of the second reading).
    #[test]
    fn cpu_of_a_process_that_exited_stays_counted() {
        let a = TestChild::sh("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30");
        let b = TestChild::sh("exec sleep 30");
        let pids = ServerPids::new(vec![a.id(), b.id()]);
        // Wait until the busy loop has used a few ticks.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut before = pids.cpu_seconds().unwrap();
        while before < 0.05 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            before = pids.cpu_seconds().unwrap();
        }
        assert!(before >= 0.05, "{before}");
        drop(a);
        let after = pids.cpu_seconds().unwrap();
        assert!(after >= before, "{before} -> {after}");
        drop(b);
    }
}
