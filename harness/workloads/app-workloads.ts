/**
 * Application workloads of a system image, as data: for each real application of the Debian system, what the
 * harness starts in the guest (through the guest agent), how it knows the application is ready, and how it
 * reads cumulative ops from the load generator's own periodic output. The busybox workloads of kernel images
 * print their progress on the console (console-protocol.ts); these yield the same WorkloadProgress records.
 *
 * How a load runs: the backend runs `setup` once and `ready` until it succeeds (each through guest-exec), then
 * spawns `guestScript()`: the load generator in a loop, its stdout and stderr piped through a stamper that puts
 * the guest's uptime (CLOCK_BOOTTIME, /proc/uptime, 10 ms; it stops while the guest is paused) before every
 * line, into the virtio-serial port WORKLOAD_PORT. The backend follows what arrives there as it follows the
 * serial console (each line stamped with the host time it arrived) and feeds it to an AppOutput, whose meter
 * parses the tool's own lines into cumulative ops. If the tool fails, the loop ends and the script says so
 * (`XME-APP-EXIT status=N`), which AppOutput reports as the failure, with the tool's last lines.
 */
import type { AppWorkloadName, WorkloadParam, WorkloadProgress, WorkloadSpec } from '../vocabulary.ts';

/** The virtio-serial port the load's output goes to: /dev/virtio-ports/xme.workload in the guest. */
export const WORKLOAD_PORT = 'xme.workload';

/** The line the guest script prints when the load loop ends (the tool failed): its exit status. */
export const APP_EXIT_MARKER = 'XME-APP-EXIT';

/** What the workloads need to know of the image (from the system image's manifest). */
export interface AppImageFacts {
  /** pgbench tables made at image build time. */
  pgbenchDatabase: string;
  /** The C code base and how to build and clean it. */
  buildSource: { dir: string; build: string; clean: string };
}

export type AppParams = NonNullable<WorkloadSpec['params']>;

/** Reads one tool's output: each line in order; the cumulative ops after it, whenever the line changes them. */
export interface OpsMeter {
  line(text: string): number | undefined;
}

export interface AppWorkload {
  name: AppWorkloadName;
  description: string;
  /** What one op is; undefined when nothing is counted (system-idle). */
  ops: string | undefined;
  /** The workload parameters a scenario may set (scenario validation refuses others). */
  params: readonly WorkloadParam[];
  /** Shell run once before the load (as root, in /tmp); must exit 0. */
  setup?(params: AppParams, image: AppImageFacts): string;
  /** Shell that exits 0 once the application answers; run again until it does. */
  ready?: string;
  /** Shell that runs the load generator for ever (a loop of slices or of long runs); exits only if the tool fails. */
  load?(params: AppParams, image: AppImageFacts): string;
  /** A fresh meter for one guest's output. */
  meter?(params: AppParams): OpsMeter;
}

/** Seconds of a slice or progress interval from interval_ms (default 5 s), at least 1. */
function intervalSeconds(params: AppParams): number {
  return Math.max(1, Math.round((params.interval_ms ?? 5000) / 1000));
}

/** `cmd || exit $?`, repeated: a loop that ends only when the tool fails, with the tool's status. */
function forever(...commands: string[]): string {
  return `while :; do ${commands.map((command) => `${command} || exit $?;`).join(' ')} done`;
}

/** nginx's file set: files of 4–64 KiB (sizes cycle through 4 KiB steps) adding up to at least `mib` MiB. */
export const NGINX_FILE_DIR = '/var/www/html/xme';

/**
 * wrk: one slice's summary. "  924 requests in 5.06s, 769.70KB read", maybe "  Non-2xx or 3xx responses: 12",
 * then "Requests/sec: …", where the slice's ops (requests answered 2xx/3xx) are added.
 */
export function wrkMeter(): OpsMeter {
  let ops = 0;
  let requests: number | undefined;
  let failed = 0;
  return {
    line(text) {
      const done = /^\s*(\d+) requests in [\d.]+\w*s?, /.exec(text);
      if (done) {
        requests = Number(done[1]);
        failed = 0;
        return undefined;
      }
      const non2xx = /^\s*Non-2xx or 3xx responses: (\d+)/.exec(text);
      if (non2xx) {
        failed = Number(non2xx[1]);
        return undefined;
      }
      if (/^Requests\/sec:/.test(text) && requests !== undefined) {
        ops += Math.max(0, requests - failed);
        requests = undefined;
        return ops;
      }
      return undefined;
    },
  };
}

/** Requests per redis-benchmark test (-n): one test takes a few seconds when three guests run under TCG. */
export const REDIS_REQUESTS_PER_TEST = 4000;

/**
 * redis-benchmark -q: after each test of `requestsPerTest` requests, "SET: 2109.70 requests per second,
 * p50=11.991 msec" (its live "rps=" updates before it are \r-separated on the same line). Without -q it says
 * "  4000 requests completed in 5.02 seconds" instead; both are counted.
 */
export function redisBenchmarkMeter(requestsPerTest = REDIS_REQUESTS_PER_TEST): OpsMeter {
  let ops = 0;
  return {
    line(text) {
      let changed = false;
      for (const segment of text.split('\r')) {
        const completed = /^\s*(\d+) requests completed in [\d.]+ seconds/.exec(segment);
        if (completed || /^[A-Z_]+: [\d.]+ requests per second/.test(segment.trim())) {
          ops += completed ? Number(completed[1]) : requestsPerTest;
          changed = true;
        }
      }
      return changed ? ops : undefined;
    },
  };
}

/**
 * pgbench: "progress: 10.0 s, 39.4 tps, lat 50.848 ms stddev 13.354, 0 failed" every -P seconds (tps of that
 * interval: ops grow by tps × the interval), then at the end of each run "number of transactions actually
 * processed: 668", which sets the run's exact count (ops never go down).
 */
export function pgbenchMeter(): OpsMeter {
  let before = 0; // transactions of the runs that have ended
  let estimate = 0; // of the run under way, from its progress lines
  let lastS = 0;
  let reported = 0;
  const report = (value: number) => {
    reported = Math.max(reported, Math.round(value));
    return reported;
  };
  return {
    line(text) {
      const progress = /^progress: ([\d.]+) s, ([\d.]+) tps/.exec(text);
      if (progress) {
        const atS = Number(progress[1]);
        estimate += Number(progress[2]) * Math.max(0, atS - lastS);
        lastS = atS;
        return report(before + estimate);
      }
      const end = /^number of transactions actually processed: (\d+)/.exec(text);
      if (end) {
        before = Math.max(reported, before + Number(end[1]));
        estimate = 0;
        lastS = 0;
        return report(before);
      }
      return undefined;
    },
  };
}

/**
 * make: ops = C files compiled. make echoes each command before running it and runs them one at a time, so a
 * compile (`gcc … -c … x.c`) has finished when make prints its next line (the next command, the archive, the
 * link or "Leaving directory").
 */
export function makeMeter(): OpsMeter {
  const compile = /^\S*(gcc|cc|clang)\s(.*\s)?-c\s.*\.c\s*$/;
  // What make prints between commands, or a command it echoes (archive, link, clean); compiler diagnostics
  // printed during a compile are neither.
  const step = /^(\S*make(\[\d+\])?: |\S*make |\S*(gcc|cc|clang|ar|ranlib|rm)\s)/;
  let ops = 0;
  let compiling = false;
  return {
    line(text) {
      const isCompile = compile.test(text);
      if (!isCompile && !step.test(text)) return undefined;
      const finished = compiling && !/\*\*\* .*Error/.test(text);
      compiling = isCompile;
      if (!finished) return undefined;
      ops++;
      return ops;
    },
  };
}

export const APP_WORKLOAD_DEFINITIONS: Record<AppWorkloadName, AppWorkload> = {
  nginx: {
    name: 'nginx',
    description: `nginx (the image's, enabled at boot) serving a file set of random files of 4–64 KiB (${NGINX_FILE_DIR}), wrk as the client over loopback in slices of interval_ms (wrk -t1 -c4, the files in turn)`,
    ops: 'HTTP requests answered (2xx/3xx), counted per wrk slice',
    params: ['mib', 'interval_ms'],
    setup: (params) => {
      const bytes = (params.mib ?? 4) * 1024 * 1024;
      return [
        'set -e',
        `mkdir -p ${NGINX_FILE_DIR} /run/xme`,
        'n=0; total=0',
        `while [ $total -lt ${bytes} ]; do n=$((n + 1)); size=$((4096 * (1 + (n - 1) % 16))); head -c $size /dev/urandom > ${NGINX_FILE_DIR}/$n.bin; total=$((total + size)); done`,
        // wrk asks for the files in turn (a Lua request hook).
        `printf 'local n, i = %d, 0\\nrequest = function()\\n  i = i %% n + 1\\n  return wrk.format("GET", "/xme/" .. i .. ".bin")\\nend\\n' $n > /run/xme/wrk-files.lua`,
        'echo "files=$n bytes=$total"',
      ].join('\n');
    },
    ready: 'systemctl is-active --quiet nginx.service',
    load: (params) => forever(`stdbuf -oL wrk -t1 -c4 -d${intervalSeconds(params)}s -s /run/xme/wrk-files.lua http://127.0.0.1/`),
    meter: () => wrkMeter(),
  },
  redis: {
    name: 'redis',
    description: `redis-server (the image's, enabled at boot) under redis-benchmark -q over loopback: SET then GET, ${REDIS_REQUESTS_PER_TEST} requests each, 50 clients, round and round`,
    ops: 'redis requests completed, counted per redis-benchmark test',
    params: [],
    ready: '[ "$(redis-cli ping)" = PONG ]',
    // -q: one line per test (the full report is ~100 lines, and stamping each costs the guest ~10 ms under TCG).
    load: () => forever(`stdbuf -oL redis-benchmark -q -n ${REDIS_REQUESTS_PER_TEST} -t set,get`),
    meter: () => redisBenchmarkMeter(),
  },
  pgbench: {
    name: 'pgbench',
    description:
      "PostgreSQL 15 (the image's cluster, enabled at boot) under pgbench (TPC-B-like, 2 clients) on the pgbench database made at image build, in runs of 10 minutes with a progress line every interval_ms",
    ops: 'pgbench transactions (from its progress lines: tps × interval; exact at the end of each run)',
    params: ['interval_ms'],
    ready: 'pg_isready -q',
    load: (params, image) => forever(`runuser -u postgres -- pgbench -P ${intervalSeconds(params)} -T 600 -c 2 ${image.pgbenchDatabase}`),
    meter: () => pgbenchMeter(),
  },
  build: {
    name: 'build',
    description: "a C build: the image's Lua 5.4 sources built with make and gcc (make posix), then cleaned, round and round",
    ops: 'C files compiled (35 per build)',
    params: [],
    setup: (_params, image) => `${image.buildSource.clean} >/dev/null`,
    load: (_params, image) => forever(image.buildSource.build, image.buildSource.clean),
    meter: () => makeMeter(),
  },
  'system-idle': {
    name: 'system-idle',
    description: 'nothing started: systemd, journald and the services of the image (nginx, redis, postgresql) at rest',
    ops: undefined,
    params: [],
  },
};

export function appWorkload(name: AppWorkloadName): AppWorkload {
  return APP_WORKLOAD_DEFINITIONS[name];
}

/**
 * The shell the guest runs for the load (via guest-exec, as root): the load in /tmp, its output and its end
 * stamped with the guest's uptime, line by line, into the workload port. Built-ins only in the stamping loop
 * (read, printf), so it forks nothing per line.
 */
export function guestScript(load: string): string {
  return [
    `{ cd /tmp && ( ${load} ); echo "${APP_EXIT_MARKER} status=$?"; } 2>&1 |`,
    `while IFS= read -r line; do read -r up _ < /proc/uptime; printf '%s %s\\n' "$up" "$line"; done > /dev/virtio-ports/${WORKLOAD_PORT}`,
  ].join(' ');
}

/**
 * One guest's load output as the harness reads it: fed text in arbitrary chunks (stamped lines, see
 * guestScript), it keeps the progress records, the tool's recent lines and whether the load has ended.
 */
export class AppOutput {
  readonly progress: WorkloadProgress[] = [];
  /** The tool's last lines, unstamped, \r-progress collapsed to its last part (for error messages). */
  private readonly recent: string[] = [];
  /** XME-* lines (the exit marker, and an XME-ERROR line for it, as busybox's init prints), all kept. */
  private readonly xmeLines: string[] = [];
  private partial = '';
  private lastOps: number | undefined;
  /** The load loop's exit status, once it has ended. */
  exitStatus: number | undefined;

  constructor(
    readonly workload: string,
    private readonly meter: OpsMeter | undefined,
  ) {}

  consume(text: string, hostMs = Date.now()): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) this.take(raw, hostMs);
  }

  private take(raw: string, hostMs: number): void {
    const stamped = /^(\d+(?:\.\d+)?) (.*)$/s.exec(raw);
    if (!stamped) return; // only the stamper writes to the port: anything else is noise (a partial first line)
    const tMs = Math.round(Number(stamped[1]) * 1000);
    const line = stamped[2]!;
    const exit = new RegExp(`^${APP_EXIT_MARKER} status=(\\d+)`).exec(line);
    if (exit) {
      this.exitStatus = Number(exit[1]);
      this.xmeLines.push(line, `XME-ERROR workload ${this.workload} exited with status ${this.exitStatus}${this.lastLine() ? `: ${this.lastLine()}` : ''}`);
      return;
    }
    const shown = line
      .split('\r')
      .filter((part) => part.trim())
      .pop();
    if (shown !== undefined) {
      this.recent.push(shown.trimEnd());
      if (this.recent.length > 50) this.recent.shift();
    }
    // The first line of the tool says it runs: a record of ops 0 at its start, so the first interval has a rate.
    if (this.meter && this.progress.length === 0) this.progress.push({ tMs, ops: 0, hostMs });
    const ops = this.meter?.line(line);
    if (ops !== undefined && ops !== this.lastOps) {
      this.lastOps = ops;
      this.progress.push({ tMs, ops, hostMs });
    }
  }

  /** The tool's last n non-empty lines. */
  tail(n = 5): string[] {
    return this.recent.slice(-n);
  }

  private lastLine(): string | undefined {
    return this.recent.at(-1)?.trim();
  }

  /** Cumulative ops so far (0 before the first count). */
  get ops(): number {
    return this.progress.at(-1)?.ops ?? 0;
  }

  /** Lines containing `prefix`, from the prefix on: XME-* lines all, others among the tool's recent lines. */
  matching(prefix: string): string[] {
    const lines = prefix.includes('XME-') ? this.xmeLines : this.recent;
    return lines.filter((line) => line.includes(prefix)).map((line) => line.slice(line.indexOf(prefix)));
  }

  /**
   * Why the load is no longer running, once it has ended: the tool's status and its last two lines (a tool's
   * reason often comes the line before its last: pgbench says which database is missing, then that it gave up).
   */
  failure(): string | undefined {
    if (this.exitStatus === undefined) return undefined;
    const last = this.tail(2)
      .map((line) => line.trim())
      .join(' | ');
    return `${this.workload}'s load ended with status ${this.exitStatus}${last ? ` (last output: ${last})` : ' (no output)'}`;
  }
}
