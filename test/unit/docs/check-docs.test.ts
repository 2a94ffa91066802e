import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import {
  anchorOf,
  type CommandNode,
  checkLinks,
  checkMention,
  commandMentions,
  extractBlocks,
  rewritePorts,
  runnable,
  runPage,
} from "../../../scripts/check-docs.js";

const page = [
  "# Title",
  "",
  "<!-- not-run: needs a DigitalOcean token -->",
  "```sh",
  "npx doproxy droplets add --count 2   # two",
  "```",
  "",
  "```sh",
  "curl http://127.0.0.1:8080/ && doproxy serve --config x.toml &",
  "```",
  "",
  "```toml",
  'listen = "127.0.0.1:8080"',
  "```",
].join("\n");

const tree: CommandNode = {
  name: "doproxy",
  flags: ["--help"],
  commands: [
    { name: "serve", flags: ["--config", "--help"], commands: [] },
    {
      name: "droplets",
      flags: ["--help"],
      commands: [{ name: "add", flags: ["--count", "--config", "--help"], commands: [] }],
    },
  ],
};

describe("the docs checker's rules", () => {
  it("finds blocks, their language, line and not-run marker", () => {
    const blocks = extractBlocks("p.md", page);
    assert.deepEqual(
      blocks.map((b) => [b.line, b.lang, b.notRun ?? null]),
      [
        [4, "sh", "needs a DigitalOcean token"],
        [8, "sh", null],
        [12, "toml", null],
      ],
    );
    assert.deepEqual(
      runnable(blocks).map((b) => b.line),
      [8],
    );
  });

  it("reads doproxy commands and their flags, up to a comment", () => {
    const [marked, run] = extractBlocks("p.md", page);
    assert.deepEqual(commandMentions(marked as never), [
      { where: "p.md:5", words: ["droplets", "add"], flags: ["--count"] },
    ]);
    assert.deepEqual(commandMentions(run as never), [
      { where: "p.md:9", words: ["serve"], flags: ["--config"] },
    ]);
    assert.deepEqual(
      commandMentions({
        file: "p.md",
        line: 1,
        lang: "sh",
        text: "npm run demo   # watch doproxy autoscale a pool",
      }),
      [],
    );
  });

  it("accepts known commands and flags, names what is wrong otherwise", () => {
    const at = (words: string[], flags: string[] = []) => checkMention(tree, { where: "w", words, flags });
    assert.equal(at(["droplets", "add"], ["--count"]), null);
    assert.equal(at(["serve"], ["--config"]), null);
    assert.match(at(["droplets", "add"], ["--bogus"]) ?? "", /has no --bogus/);
    assert.match(at(["droplets", "nope"]) ?? "", /not one of add/);
    assert.match(at(["droplets"]) ?? "", /not one of add/);
    assert.match(at(["launch"]) ?? "", /no such command/);
  });

  it("makes GitHub's anchors", () => {
    assert.equal(anchorOf("## Several proxies, one pool: PostgreSQL"), "several-proxies-one-pool-postgresql");
    assert.equal(
      anchorOf("### The autoscaling benchmark: `npm run bench:autoscale`"),
      "the-autoscaling-benchmark-npm-run-benchautoscale",
    );
  });

  it("replaces the loopback ports a block names, and no other number", () => {
    const ports = new Map([["8080", "41000"]]);
    assert.equal(
      rewritePorts("curl http://127.0.0.1:8080/ localhost:8080 10.0.0.5:8080 127.0.0.1:9090", ports),
      "curl http://127.0.0.1:41000/ localhost:41000 10.0.0.5:8080 127.0.0.1:9090",
    );
  });

  it("reports links to missing files and missing headings, not good ones", () => {
    const root = mkdtempSync(path.join(tmpdir(), "doproxy-docs-links-"));
    try {
      mkdirSync(path.join(root, "docs"));
      writeFileSync(
        path.join(root, "README.md"),
        "# R\n[a](docs/a.md) [b](docs/a.md#two-words) [c](docs/gone.md) [d](docs/a.md#nope) [e](https://x.org/y) [f](#r)\n```\n[g](not/checked.md)\n```\n",
      );
      writeFileSync(path.join(root, "docs/a.md"), "# A\n## Two words\n[back](../README.md#r)\n");
      assert.deepEqual(checkLinks(root, ["README.md", "docs/a.md"]), [
        "README.md:2: docs/gone.md (no such file docs/gone.md)",
        "README.md:2: docs/a.md#nope (no heading #nope in docs/a.md)",
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("reports the failing block with its output, and stops what the blocks started", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "doproxy-docs-run-"));
    const pidFile = path.join(dir, "sleeper.pid");
    const blocks = extractBlocks(
      "p.md",
      `\`\`\`sh\necho one\nsleep 300 &\necho $! > ${pidFile}\n\`\`\`\n\n\`\`\`sh\necho two; ls /no/such/dir\necho never\n\`\`\`\n`,
    );
    const failure = await runPage(blocks, { cli: "/nonexistent/cli.js", timeoutMs: 20_000 });
    const sleeper = Number(readFileSync(pidFile, "utf8"));
    rmSync(dir, { recursive: true, force: true });
    assert.throws(
      () => process.kill(sleeper, 0),
      { code: "ESRCH" },
      "the block's background process was stopped",
    );
    assert.ok(failure);
    assert.equal(failure.block.line, 7);
    assert.equal(failure.timedOut, false);
    assert.notEqual(failure.exitCode, 0);
    assert.match(failure.output, /two/);
    assert.doesNotMatch(failure.output, /never|one/);
  });

  it("reports a block that does not finish in time", async () => {
    const blocks = extractBlocks("p.md", "```sh\nsleep 30\n```\n");
    const failure = await runPage(blocks, { cli: "/nonexistent/cli.js", timeoutMs: 500 });
    assert.equal(failure?.timedOut, true);
  });
});
