/**
 * Runs a command on a real pseudo-terminal (python3's pty module; no native
 * Node dependency), so that stdout and stderr are TTYs exactly as for a
 * person at a terminal. The child's stdin is the terminal too, and nothing
 * is ever typed: the command must not wait for input.
 */
import { spawn } from 'node:child_process';

const PTY_RUNNER = `
import os, sys, pty
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b''
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
`;

/** What the terminal showed (stdout and stderr together, as on a screen) and the exit code. */
export function runInPty(command: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; screen: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', PTY_RUNNER, ...command], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let screen = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen }));
  });
}
