// Network namespaces for __test__/multi-host.test.mjs: a client, a balancer and the hosts, each in a
// namespace of its own, joined to the balancer by veth pairs (198.18.0.0/15, the range RFC 2544
// sets aside for test networks, so nothing real is shadowed). The balancer forwards between them and
// holds the service's virtual address only in an nftables DNAT rule, the way kube-proxy's nftables
// mode holds a Service's ClusterIP: no interface has it, the rule rewrites it to a host's address on
// the first packet of a flow, and conntrack keeps the rest of the flow on that host. kube-proxy
// picks the host at random (`numgen random mod N`); this rule picks by a hash of the source address
// and port (`jhash ip saddr . udp sport mod N`), so the same source always meets the same host and
// a test can find out which. Either way a client whose port changes is a new flow, balanced afresh.
//
// Names carry this process's pid, so two runs never meet; namespaces a run that died left behind
// (its pid gone) are deleted first. Processes run inside with `ip netns exec`, which execs in place:
// the child's pid is the program's own, for kill().
import { execFileSync, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export const VIRTUAL_ADDRESS = '198.18.0.10'
export const CLIENT_ADDRESS = '198.18.1.2'
const PREFIX = 'wtmh'
const COMMAND_TIMEOUT = 10_000

function run(command, args, input) {
  try {
    return execFileSync(command, args, { input, timeout: COMMAND_TIMEOUT, stdio: ['pipe', 'pipe', 'pipe'] }).toString()
  } catch (error) {
    throw new Error(`${command} ${args.join(' ')}: ${error.stderr?.toString().trim() || error.message}`)
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

/** Deletes the namespaces of runs whose process is gone (a runner that was killed has no `after`). */
function sweepStale() {
  for (const line of run('ip', ['netns', 'list']).split('\n')) {
    const match = new RegExp(`^(${PREFIX}(\\d+)[a-z]+)\\b`).exec(line)
    if (match && !alive(Number(match[2]))) run('ip', ['netns', 'del', match[1]])
  }
}

/**
 * Builds client ⇄ balancer ⇄ hosts for `hostNames` (at most 250), with the balancer's DNAT rule
 * for `port` on VIRTUAL_ADDRESS. Returns the namespace names, each host's address, `spawn` for
 * processes inside a namespace and `destroy` (idempotent; kills those processes, deletes the
 * namespaces). On a failure half way, what was built is destroyed before the error is thrown.
 */
export function createFleetNetwork(hostNames, port) {
  sweepStale()
  const ns = (suffix) => `${PREFIX}${process.pid}${suffix}`
  const client = ns('client')
  const balancer = ns('lb')
  const hosts = Object.fromEntries(hostNames.map((name, i) => [name, { ns: ns(`h${name}`), address: `198.18.${i + 2}.2` }]))
  const created = []
  const children = new Set()

  const network = {
    client,
    balancer,
    hosts,
    /** Runs `argv` inside namespace `namespace`; see NamespacedProcess. */
    spawn(namespace, argv) {
      const child = new NamespacedProcess(namespace, argv)
      children.add(child)
      child.exited.then(() => children.delete(child))
      return child
    },
    /**
     * NAT rebinding, as a home router does it: from now on the client's packets to the virtual
     * address from port `from` leave with source port `to`, and the answers to `to` come back to
     * `from`, rewritten statelessly in the client's namespace before anything else sees them. The
     * client's socket does not know; the balancer sees a new flow. Replaces an earlier rebinding.
     */
    rebindClient(from, to) {
      run('ip', ['netns', 'exec', client, 'nft', '-f', '-'], `add table ip rebind
delete table ip rebind
table ip rebind {
  chain out {
    type filter hook output priority raw; policy accept;
    ip daddr ${VIRTUAL_ADDRESS} udp sport ${from} udp sport set ${to}
  }
  chain in {
    type filter hook prerouting priority raw; policy accept;
    ip saddr ${VIRTUAL_ADDRESS} udp dport ${to} udp dport set ${from}
  }
}
`)
    },
    destroy() {
      for (const child of children) child.kill()
      children.clear()
      for (const name of created.splice(0).reverse()) {
        try {
          run('ip', ['netns', 'del', name])
        } catch (error) {
          process.emitWarning(`netns.mjs: ${error.message}`)
        }
      }
    },
  }

  try {
    for (const name of [client, balancer, ...Object.values(hosts).map((h) => h.ns)]) {
      run('ip', ['netns', 'add', name])
      created.push(name)
      run('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
    }
    // One veth pair per leaf: `eth0` in the leaf, `to-<leaf>` in the balancer, a /24 each.
    const link = (leaf, device, subnet) => {
      run('ip', ['-n', balancer, 'link', 'add', device, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', leaf])
      run('ip', ['-n', balancer, 'addr', 'add', `${subnet}.1/24`, 'dev', device])
      run('ip', ['-n', balancer, 'link', 'set', device, 'up'])
      run('ip', ['-n', leaf, 'addr', 'add', `${subnet}.2/24`, 'dev', 'eth0'])
      run('ip', ['-n', leaf, 'link', 'set', 'eth0', 'up'])
      run('ip', ['-n', leaf, 'route', 'add', 'default', 'via', `${subnet}.1`])
    }
    link(client, 'to-client', '198.18.1')
    hostNames.forEach((name, i) => link(hosts[name].ns, `to-${name}`, `198.18.${i + 2}`))
    // /proc/sys/net is the reading process's namespace's: written from inside the balancer.
    run('ip', ['netns', 'exec', balancer, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward'])
    const targets = hostNames.map((name, i) => `${i} : ${hosts[name].address}`).join(', ')
    run('ip', ['netns', 'exec', balancer, 'nft', '-f', '-'], `table ip fleet {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${VIRTUAL_ADDRESS} udp dport ${port} dnat to jhash ip saddr . udp sport mod ${hostNames.length} map { ${targets} }
  }
}
`)
  } catch (error) {
    network.destroy()
    throw error
  }
  return network
}

/**
 * A process inside a namespace whose stdout is JSON lines, read with `next(ms)`; `send(line)`
 * writes to its stdin. Its stderr is kept for error messages. Programs run this way exit when
 * their stdin closes, so one whose runner died does not outlive it.
 */
class NamespacedProcess {
  constructor(namespace, argv) {
    this.label = `${argv.map((a) => a.split('/').at(-1)).join(' ')} in ${namespace}`
    this.child = spawn('ip', ['netns', 'exec', namespace, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.stderr = ''
    this.child.stderr.on('data', (d) => (this.stderr += d))
    this.child.stdin.on('error', () => {})
    this.lines = []
    this.waiting = null
    this.status = null
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        this.status = { code, signal }
        resolve(this.status)
        this.waiting?.()
      }),
    )
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(line)
      this.waiting?.()
    })
  }

  /** The next JSON line, within `ms`; rejects with the process's stderr when it exits or times out first. */
  async next(ms) {
    const deadline = Date.now() + ms
    while (this.lines.length === 0) {
      const left = deadline - Date.now()
      if (this.status || left <= 0) {
        const why = this.status ? `exited (${this.status.signal ?? this.status.code})` : `printed nothing within ${ms} ms`
        throw new Error(`${this.label} ${why}; stderr:\n${this.stderr}`)
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiting = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.waiting = null
    }
    const line = this.lines.shift()
    try {
      return JSON.parse(line)
    } catch {
      throw new Error(`${this.label} printed a line that is not JSON: ${line}`)
    }
  }

  send(line) {
    this.child.stdin.write(`${line}\n`)
  }

  /** SIGKILL; resolves when the process is gone. */
  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    return this.exited
  }
}
