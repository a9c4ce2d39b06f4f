/**
 * The application workloads' output parsers, on real output: every line below was captured from the real tool
 * in a real debian-system guest under QEMU TCG (2026-12-01/02; the stamped ones from the workload port of a
 * 3-guest run, the rest from guest-exec), not written by hand.
 */
import { describe, expect, it } from 'vitest';
import { APP_WORKLOADS } from '../vocabulary.ts';
import { AppOutput, appWorkload, guestScript, makeMeter, pgbenchMeter, redisBenchmarkMeter, wrkMeter, type OpsMeter } from './app-workloads.ts';

/** Each line's cumulative ops, where it changed them. */
function feed(meter: OpsMeter, lines: string[]): (number | undefined)[] {
  return lines.map((line) => meter.line(line));
}

const unstamp = (lines: string) =>
  lines
    .trim()
    .split('\n')
    .map((line) => line.replace(/^\d+\.\d+ /, ''));

// wrk -t1 -c4 -d5s -s /run/xme/wrk-files.lua http://127.0.0.1/, through the workload port (3 guests at once).
const WRK_SLICES = `
163.85 Running 5s test @ http://127.0.0.1/
163.88   1 threads and 4 connections
168.94   Thread Stats   Avg      Stdev     Max   +/- Stdev
169.04     Latency    40.27ms   30.55ms 253.32ms   85.79%
169.06     Req/Sec   103.20     47.66   230.00     67.39%
169.07   501 requests in 5.05s, 16.29MB read
169.07 Requests/sec:     99.19
169.07 Transfer/sec:      3.23MB
170.24 Running 5s test @ http://127.0.0.1/
170.26   1 threads and 4 connections
175.42   Thread Stats   Avg      Stdev     Max   +/- Stdev
175.49     Latency    38.02ms   21.56ms 139.88ms   69.38%
175.50     Req/Sec    99.88     54.20   330.00     81.63%
175.51   506 requests in 5.14s, 16.47MB read
175.51 Requests/sec:     98.44
175.51 Transfer/sec:      3.20MB`;

// wrk -t1 -c4 -d3s http://127.0.0.1/nothere (one guest, guest-exec): every answer a 404.
const WRK_404 = `Running 3s test @ http://127.0.0.1/nothere
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.07ms    3.74ms  34.85ms   93.34%
    Req/Sec   699.23    183.93     1.01k    70.00%
  2092 requests in 3.02s, 629.23KB read
  Non-2xx or 3xx responses: 2092
Requests/sec:    693.78
Transfer/sec:    208.68KB`;

// redis-benchmark -q -n 2000 -t set,get (one guest, guest-exec): live updates \r-separated, then the test's line.
const REDIS_Q = [
  ' \rSET: rps=0.0 (overall: 0.0) avg_msec=-nan (overall: -nan)\r                                                          \rSET: rps=2411.6 (overall: 2197.4) avg_msec=11.504 (overall: 11.504)\r                                                                    \rSET: rps=2173.1 (overall: 2186.2) avg_msec=13.251 (overall: 12.305)\r                                                                    \rSET: rps=1707.9 (overall: 2032.5) avg_msec=14.421 (overall: 12.876)\r                                                                    \rSET: 2109.70 requests per second, p50=11.991 msec',
  ' \rGET: rps=298.9 (overall: 1591.8) avg_msec=13.267 (overall: 13.267)\r                                                                   \rGET: rps=1896.2 (overall: 1847.9) avg_msec=13.214 (overall: 13.221)\r                                                                    \rGET: 1885.01 requests per second, p50=12.399 msec',
  '',
];

// redis-benchmark -n 4000 -t set,get without -q, through the workload port: the full report's first lines.
const REDIS_FULL = [
  ' \rSET: rps=0.0 (overall: 0.0) avg_msec=-nan (overall: -nan)\r                                                          \rSET: rps=57.7 (overall: 54.9) avg_msec=155.461 (overall: 155.461)\r                                                                  \r====== SET ======',
  '  4000 requests completed in 20.34 seconds',
  '  50 parallel clients',
  '  3 bytes payload',
  '  throughput summary: 196.69 requests per second',
];

// runuser -u postgres -- pgbench -P 5 -T 16 -c 2 pgbench (one guest, guest-exec): a whole run.
const PGBENCH_RUN = `pgbench (15.20 (Debian 15.20-0+deb12u1))
starting vacuum...end.
progress: 5.0 s, 42.8 tps, lat 45.602 ms stddev 15.503, 0 failed
progress: 10.0 s, 39.4 tps, lat 50.848 ms stddev 13.354, 0 failed
progress: 15.0 s, 39.8 tps, lat 50.300 ms stddev 18.252, 0 failed
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 2
query mode: simple
number of clients: 2
number of threads: 1
maximum number of tries: 1
duration: 16 s
number of transactions actually processed: 668
number of failed transactions: 0 (0.000%)
latency average = 47.712 ms
latency stddev = 15.840 ms
initial connection time = 80.022 ms
tps = 41.872634 (without initial connection time)`;

// pgbench -P 5 -T 600 -c 2 pgbench through the workload port (3 guests at once): a late interval (35.1 s).
const PGBENCH_PORT = `
103.47 pgbench (15.20 (Debian 15.20-0+deb12u1))
104.02 starting vacuum...end.
109.05 progress: 5.0 s, 8.2 tps, lat 230.273 ms stddev 157.915, 0 failed
114.03 progress: 10.0 s, 22.0 tps, lat 93.304 ms stddev 55.249, 0 failed
119.02 progress: 15.0 s, 17.4 tps, lat 115.374 ms stddev 30.268, 0 failed
124.03 progress: 20.0 s, 16.4 tps, lat 122.322 ms stddev 43.889, 0 failed
129.02 progress: 25.0 s, 13.4 tps, lat 143.506 ms stddev 42.999, 0 failed
134.02 progress: 30.0 s, 9.0 tps, lat 228.026 ms stddev 81.046, 0 failed
139.10 progress: 35.1 s, 14.6 tps, lat 135.546 ms stddev 45.271, 0 failed`;

// make -C /usr/src/lua5.4 posix through the workload port (3 guests at once): the start of a build.
const MAKE_START = `
56.28 make: Entering directory '/usr/src/lua5.4'
57.56 make[1]: Entering directory '/usr/src/lua5.4/src'
57.59 make all SYSCFLAGS="-DLUA_USE_POSIX"
58.73 make[2]: Entering directory '/usr/src/lua5.4/src'
58.74 gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o lapi.o lapi.c
92.17 gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX   -c lcode.c
111.59 gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o lctype.o lctype.c
112.40 gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o ldebug.o ldebug.c`;

// The end of a build, then `make clean` (one guest, guest-exec).
const MAKE_END = `gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o linit.o linit.c
ar rcu liblua.a lapi.o lcode.o lctype.o ldebug.o ldo.o ldump.o lfunc.o lgc.o llex.o lmem.o lobject.o lopcodes.o lparser.o lstate.o lstring.o ltable.o ltm.o lundump.o lvm.o lzio.o lauxlib.o lbaselib.o lcorolib.o ldblib.o liolib.o lmathlib.o loadlib.o loslib.o lstrlib.o ltablib.o lutf8lib.o linit.o 
ar: \`u' modifier ignored since \`D' is the default (see \`U')
ranlib liblua.a
gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o lua.o lua.c
gcc -std=gnu99 -o lua   lua.o liblua.a -lm  
gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o luac.o luac.c
gcc -std=gnu99 -o luac   luac.o liblua.a -lm  
make[2]: Leaving directory '/usr/src/lua5.4/src'
make[1]: Leaving directory '/usr/src/lua5.4/src'
make: Leaving directory '/usr/src/lua5.4'
make: Entering directory '/usr/src/lua5.4'
make[1]: Entering directory '/usr/src/lua5.4/src'
rm -f liblua.a lua luac lapi.o lcode.o lctype.o ldebug.o ldo.o ldump.o lfunc.o lgc.o llex.o lmem.o lobject.o lopcodes.o lparser.o lstate.o lstring.o ltable.o ltm.o lundump.o lvm.o lzio.o lauxlib.o lbaselib.o lcorolib.o ldblib.o liolib.o lmathlib.o loadlib.o loslib.o lstrlib.o ltablib.o lutf8lib.o linit.o  lua.o luac.o
make[1]: Leaving directory '/usr/src/lua5.4/src'
make: Leaving directory '/usr/src/lua5.4'`;

describe('application workload parsers (real tool output)', () => {
  it('wrk: a slice counts its requests at its Requests/sec line', () => {
    const meter = wrkMeter();
    const ops = feed(meter, unstamp(WRK_SLICES));
    expect(ops.filter((value) => value !== undefined)).toEqual([501, 1007]);
    expect(ops[6]).toBe(501); // the first slice's "Requests/sec:" line
  });

  it('wrk: answers that are not 2xx/3xx are not ops', () => {
    expect(feed(wrkMeter(), WRK_404.split('\n')).filter((value) => value !== undefined)).toEqual([0]);
  });

  it('redis-benchmark -q: each test line adds its requests; the \\r live updates add nothing', () => {
    expect(feed(redisBenchmarkMeter(2000), REDIS_Q)).toEqual([2000, 4000, undefined]);
  });

  it('redis-benchmark without -q: "requests completed", once per test', () => {
    expect(feed(redisBenchmarkMeter(), REDIS_FULL)).toEqual([undefined, 4000, undefined, undefined, undefined]);
  });

  it('pgbench: tps × interval from the progress lines, then the exact count at the end of a run', () => {
    const ops = feed(pgbenchMeter(), PGBENCH_RUN.split('\n'));
    expect(ops.slice(2, 5)).toEqual([214, 411, 610]); // 42.8×5, +39.4×5, +39.8×5
    expect(ops[12]).toBe(668); // number of transactions actually processed
    expect(ops.filter((value) => value !== undefined)).toEqual([214, 411, 610, 668]);
    // A second run continues from the first run's exact count.
    const meter = pgbenchMeter();
    feed(meter, PGBENCH_RUN.split('\n'));
    expect(feed(meter, ['progress: 5.0 s, 42.8 tps, lat 45.602 ms stddev 15.503, 0 failed'])).toEqual([882]);
  });

  it('pgbench: an interval longer than -P (a late line) counts its own length', () => {
    const ops = feed(pgbenchMeter(), unstamp(PGBENCH_PORT)).filter((value) => value !== undefined);
    // 8.2×5 + 22×5 + 17.4×5 + 16.4×5 + 13.4×5 + 9×5 = 432; then 14.6 × 5.1 s = 74.46
    expect(ops).toEqual([41, 151, 238, 320, 387, 432, 506]);
  });

  it('pgbench: ops never go down when the end count is below the progress estimate', () => {
    const meter = pgbenchMeter();
    expect(meter.line('progress: 5.0 s, 42.8 tps, lat 45.602 ms stddev 15.503, 0 failed')).toBe(214);
    expect(meter.line('number of transactions actually processed: 200')).toBe(214);
  });

  it('make: a compile counts when make prints its next line (the next command, the archive, a link, leaving)', () => {
    expect(feed(makeMeter(), unstamp(MAKE_START)).filter((value) => value !== undefined)).toEqual([1, 2, 3]);
    // The last library file, lua.o and luac.o: 3 more; the clean that follows counts nothing.
    const meter = makeMeter();
    meter.line('gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o lzio.o lzio.c');
    expect(feed(meter, MAKE_END.split('\n')).filter((value) => value !== undefined)).toEqual([1, 2, 3, 4]);
  });

  it('make: compiler diagnostics do not end a compile; a failed compile is not counted', () => {
    const meter = makeMeter();
    meter.line('gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX    -c -o lapi.o lapi.c');
    expect(meter.line("lapi.c: In function 'lua_settop':")).toBeUndefined();
    expect(meter.line('gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_POSIX   -c lcode.c')).toBe(1);
    expect(meter.line('make[2]: *** [<builtin>: lcode.o] Error 1')).toBeUndefined();
  });
});

describe('AppOutput: the workload port as progress records', () => {
  it('stamped lines in arbitrary chunks become WorkloadProgress records (guest time from the stamp, host time on arrival)', () => {
    const output = new AppOutput('nginx', wrkMeter());
    const text = `${WRK_SLICES.trim()}\n`;
    // The first slice's Requests/sec line is cut in two: it counts when its end arrives.
    const cut = text.indexOf('Requests/sec:') + 3;
    output.consume(text.slice(0, 100), 1000);
    output.consume(text.slice(100, cut), 2000);
    output.consume(text.slice(cut), 3000);
    expect(output.progress).toEqual([
      { tMs: 163_850, ops: 0, hostMs: 1000 },
      { tMs: 169_070, ops: 501, hostMs: 3000 },
      { tMs: 175_510, ops: 1007, hostMs: 3000 },
    ]);
    expect(output.ops).toBe(1007);
    expect(output.failure()).toBeUndefined();
    expect(output.tail(1)).toEqual(['Transfer/sec:      3.20MB']);
  });

  it('the load loop ending is the failure, with the tool’s last line, and an XME-ERROR line as busybox guests print', () => {
    const output = new AppOutput('nginx', wrkMeter());
    output.consume('200.10 unable to connect to 127.0.0.1:80 Connection refused\n200.11 XME-APP-EXIT status=1\n');
    expect(output.exitStatus).toBe(1);
    expect(output.failure()).toBe("nginx's load ended with status 1 (last output: unable to connect to 127.0.0.1:80 Connection refused)");
    expect(output.matching('XME-ERROR')).toEqual(['XME-ERROR workload nginx exited with status 1: unable to connect to 127.0.0.1:80 Connection refused']);
    expect(output.progress).toEqual([{ tMs: 200_100, ops: 0, hostMs: expect.any(Number) }]);
  });

  it('system-idle counts nothing', () => {
    const output = new AppOutput('system-idle', appWorkload('system-idle').meter?.({}));
    output.consume('1.00 anything\n');
    expect(output.progress).toEqual([]);
  });
});

describe('application workload definitions', () => {
  it('every application workload is defined; each that runs a load has a meter and says what its ops are', () => {
    for (const name of APP_WORKLOADS) {
      const app = appWorkload(name);
      expect(app.name).toBe(name);
      expect(Boolean(app.load)).toBe(Boolean(app.meter));
      expect(Boolean(app.load)).toBe(app.ops !== undefined);
    }
    expect(appWorkload('system-idle').load).toBeUndefined();
  });

  it('the guest script stamps every line of the load and its end into the workload port, forking nothing per line', () => {
    const image = {
      pgbenchDatabase: 'pgbench',
      buildSource: { dir: '/usr/src/lua5.4', build: 'make -C /usr/src/lua5.4 posix', clean: 'make -C /usr/src/lua5.4 clean' },
    };
    const load = appWorkload('pgbench').load!({ interval_ms: 2000 }, image);
    expect(load).toBe('while :; do runuser -u postgres -- pgbench -P 2 -T 600 -c 2 pgbench || exit $?; done');
    const script = guestScript(load);
    expect(script).toContain(`( ${load} ); echo "XME-APP-EXIT status=$?"; } 2>&1 |`);
    expect(script).toMatch(
      /while IFS= read -r line; do read -r up _ < \/proc\/uptime; printf '%s %s\\n' "\$up" "\$line"; done > \/dev\/virtio-ports\/xme.workload$/,
    );
    expect(appWorkload('build').load!({}, image)).toBe('while :; do make -C /usr/src/lua5.4 posix || exit $?; make -C /usr/src/lua5.4 clean || exit $?; done');
    expect(appWorkload('nginx').load!({ interval_ms: 3000 }, image)).toContain('wrk -t1 -c4 -d3s -s /run/xme/wrk-files.lua http://127.0.0.1/');
  });
});
