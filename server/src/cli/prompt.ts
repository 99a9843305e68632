/**
 * Reading a password: from the terminal without echo, or — when standard input is not a
 * terminal (a pipe, a file, a CI secret) — its first line. Never from an argument, where
 * `ps` and the shell's history would show it.
 */
import readline from 'node:readline';
import password from '@inquirer/password';
import { CliError } from './errors.js';

export async function readPassword(prompt: string): Promise<string> {
  if (process.stdin.isTTY) {
    // The prompt goes to stderr, so `plexus login … -o json > out` still works.
    let value: string;
    try {
      value = await password({ message: prompt }, { output: process.stderr });
    } catch (err) {
      // Ctrl-C or Ctrl-D at the prompt.
      if (err instanceof Error && err.name === 'ExitPromptError') throw new CliError('cancelled');
      throw err;
    }
    if (!value) throw new CliError('no password given');
    return value;
  }
  const line = await firstLine(process.stdin);
  if (!line) throw new CliError('no password on standard input (pipe it in, or run plexus login in a terminal)');
  return line;
}

/** The first line, without waiting for the end of the stream (a pipe may stay open). */
function firstLine(input: NodeJS.ReadableStream): Promise<string | undefined> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input, crlfDelay: Infinity, terminal: false });
    let done = false;
    rl.once('line', (line) => {
      done = true;
      rl.close();
      resolve(line);
    });
    rl.once('close', () => {
      if (!done) resolve(undefined);
    });
  });
}
