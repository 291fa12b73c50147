"""The command line as a user types it: --help without TensorFlow, shipped configs, --config,
--list_configs, offline --dry_run of every config and of every command README.md, docs/**/*.md,
the config headers and launch/*.sh show, the evaluation commands parsed, every program of the
pages' shell blocks resolved, the TPU script reaching strategy creation, console output."""

import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from mmd_keras.app import config as config_lib
from mmd_keras.app import launch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = sorted(name[:-4] for name in os.listdir(os.path.join(REPO, "configs"))
                 if name.endswith(".cfg"))
DOC_PAGES = ["README.md"] + sorted(os.path.relpath(path, REPO) for path in glob.glob(
    os.path.join(REPO, "docs", "**", "*.md"), recursive=True))
ENV = {**os.environ, "PYTHONPATH": REPO}
ENV.pop("TF_CPP_MIN_LOG_LEVEL", None)


def _python(code, env=ENV, cwd=REPO):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _launch(*args, env=ENV, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "mmd_keras.launch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv", [None, ["prog", "--help"], ["prog", "--steps=abc"],
                                  ["prog", "--stepz=3"], ["prog", "--list_configs"]])
def test_config_help_and_flag_errors_do_not_import_tensorflow(argv):
    code = ("import sys\nimport mmd_keras.app.config\n"
            + (f"from mmd_keras import launch\ncode = launch.main({argv!r})\n" if argv else "")
            + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]", result.stdout[-500:]


@pytest.mark.parametrize("flag", ["--help", "-h", "--helpfull"])
def test_help_lists_every_flag_by_section_and_exits_0(flag):
    result = _launch(flag)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    positions = [text.index(f"\n{section}:\n") for section in launch.SECTIONS]
    assert positions == sorted(positions)
    for name in config_lib.field_names():
        assert re.search(rf"--(\[no\])?{name}  \(default: ", text), name
    for flag_name, choices in launch._CHOICES.items():
        block = text.split(f"--{flag_name}  (default:")[1].split("\n  --")[0]
        assert "accepted: " + ", ".join(choices) in " ".join(block.split()), flag_name
    for name in ("--config=NAME", "--flagfile=PATH", "--list_configs", "--dry_run"):
        assert name in text
    assert "takes its last value" in text
    for loss, keys in config_lib.LOSS_PARAMS.items():  # each loss's --loss_params keys
        assert f"{loss}: " in text and keys[0] in text


def test_help_examples_of_loss_params_are_accepted():
    """Each example parses and the loss builds with it (the loss owns its keys)."""
    from mmd_keras import losses
    from mmd_keras.app.runner import parts

    help_text = dict(config_lib.RunConfig.__dataclass_fields__)["loss_params"].metadata["help"]
    examples = re.findall(r"(\w+=[\d.]+) for (\w+)", help_text)
    assert len(examples) >= 2
    for param, loss in examples:
        dim = losses.LOSSES[loss].required_output_dim or 16
        config, _ = launch.parse(["prog", f"--loss={loss}", f"--critic_output_dim={dim}",
                                  f"--loss_params={param}"])
        assert config.parsed_loss_params()
        assert parts.build_loss(config).name == loss


def test_a_flag_given_twice_takes_the_last_value():
    config, _ = launch.parse(["prog", "--steps=100", "--config=smoke", "--steps=30"])
    assert config.steps == 30
    config, _ = launch.parse(["prog", "--steps=30", "--config=smoke"])
    assert config.steps == 12  # the config, read after, wins


def test_list_configs_names_each_shipped_config_with_its_purpose():
    result = _launch("--list_configs")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == CONFIGS
    assert all(len(line.split(None, 1)[1]) > 20 and line.endswith(".") for line in lines)


def test_config_name_equals_its_flagfile_and_unknown_names_exit_2(capsys):
    for name in CONFIGS:
        by_name, _ = launch.parse(["prog", f"--config={name}"])
        by_path, _ = launch.parse(["prog", f"--flagfile={REPO}/configs/{name}.cfg"])
        assert by_name == by_path
    assert launch.main(["prog", "--config=imagenet1k"]) == 2
    err = capsys.readouterr().err
    assert "--config" in err and "imagenet64" in err and "smoke" in err


def test_every_config_named_in_the_docs_exists():
    texts = [open(os.path.join(REPO, page)).read() for page in DOC_PAGES]
    for folder in ("configs", "launch"):
        for name in os.listdir(os.path.join(REPO, folder)):
            texts.append(open(os.path.join(REPO, folder, name)).read())
    named = set()
    for text in texts:
        named |= set(re.findall(r"configs/(\w+)\.cfg", text))
        named |= set(re.findall(r"--config=(\w+)", text))
        named |= set(re.findall(r"`(\w+)\.cfg`", text))
    named -= {"flags", "NAME"}  # <workdir>/flags.cfg (a run writes it); --config=NAME
    assert "imagenet64" in named
    assert named <= set(CONFIGS), named - set(CONFIGS)


@pytest.fixture
def stand_in_weights(tmp_path, monkeypatch):
    """A default FID-Inception weights file in a fresh cache: a dry run checks only that it
    exists, so runs with --adaptive_lr on image data pass that check."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fid_inception.npz").write_bytes(b"stand-in")
    monkeypatch.setenv("MMD_KERAS_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("name", CONFIGS)
def test_dry_run_of_every_shipped_config_succeeds_offline(name, tmp_path, capsys, monkeypatch):
    """No dataset here: the dry run says what it did not check. Without evaluation weights,
    the configs whose learning rate follows KID on image data exit 2 naming --eval_weights (a
    real run would stop there); with a weights file they pass."""
    argv = ["prog", f"--config={name}", f"--workdir={tmp_path / 'run'}", "--dry_run"]
    resolved, _ = launch.parse(argv)
    needs_weights = resolved.adaptive_lr and resolved.dataset not in ("digits", "mnist")
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path / "empty_cache"))
    code = launch.main(argv)
    captured = capsys.readouterr()
    if needs_weights:
        assert code == 2 and "Resolved configuration" not in captured.out
        assert "--eval_weights" in captured.err and "mmd_keras.tools.fid_weights" in captured.err
        (tmp_path / "weights.npz").write_bytes(b"stand-in")
        argv.append(f"--eval_weights={tmp_path / 'weights.npz'}")
        code = launch.main(argv)
        captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Not checked:" in captured.out and "data: --dataset=" in captured.out
    resolved, _ = launch.parse(argv)
    assert config_lib.to_flagfile(resolved).split("# --- run ---")[1] in captured.out
    assert not (tmp_path / "run").exists()


def _documented_commands(pattern=r"python -m mmd_keras\.launch|mmd-keras|launch/\w+\.sh"):
    """Every command matching ``pattern`` (default: the launcher's and launch/X.sh) in README.md,
    docs/**/*.md and the config headers, in code blocks and prose, with backslash continuations
    joined; each (source, command) once."""
    sources = {page: open(os.path.join(REPO, page)).read() for page in DOC_PAGES}
    for name in CONFIGS:
        sources[f"configs/{name}.cfg"] = open(os.path.join(REPO, "configs", f"{name}.cfg")).read()
    commands = []
    for source, text in sources.items():
        text = re.sub(r"\\\n[#\s]*", " ", text)
        for line in text.splitlines():
            line = line.lstrip("#").strip().strip("`")
            match = re.search(rf"({pattern})(\s.*|$)", line)
            if match and not line.startswith(("$", "pip")):
                command = match.group(0).split("  #")[0].split("`")[0].strip()
                if (source, command) not in commands:
                    commands.append((source, command))
    return commands


def _shell_block_commands(text):
    """The commands of a page's ```bash/```sh blocks: continuations joined, comments dropped,
    ``a; b`` split, leading ``VAR=value`` assignments removed."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, re.S | re.M):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";")  # "#" starts a comment
            lexer.whitespace_split = True
            words = [*lexer, ";"]
            while ";" in words:
                command, words = words[:words.index(";")], words[words.index(";") + 1:]
                while command and re.match(r"[A-Z][A-Z0-9_]*=", command[0]):
                    command = command[1:]
                if command:
                    commands.append(command)
    return commands


#: Programs the pages may show in shell blocks beside ``python``; anything else is a typo or a
#: command nobody checks.
_OTHER_PROGRAMS = {"pip", "mmd-keras", "tensorboard", "docker", "saved_model_cli", "tfds",
                   "uptime"}


def _program_problem(words):
    """Why a shell-block command cannot run as written (a missing module, script or program),
    or None."""
    program = words[0]
    if program == "python":
        if words[1] == "-m":
            if words[2] == "pytest":
                return None
            path = os.path.join(REPO, *words[2].split("."))
            if os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__main__.py")):
                return None
            return f"no module {words[2]} with a main in the repository"
        return None if os.path.isfile(os.path.join(REPO, words[1])) else f"no script {words[1]}"
    if program.startswith("launch/"):
        return None if os.access(os.path.join(REPO, program), os.X_OK) else f"no script {program}"
    return None if program in _OTHER_PROGRAMS else f"unknown program {program}"


def test_every_shell_block_command_names_a_program_that_exists():
    """Every command of every ```bash block of the README and the docs runs a module, script
    or program that exists (so a renamed module or script cannot leave a dead command)."""
    problems, count = [], 0
    for page in DOC_PAGES:
        for words in _shell_block_commands(open(os.path.join(REPO, page)).read()):
            count += 1
            problem = _program_problem(words)
            if problem:
                problems.append((page, " ".join(words), problem))
    assert count >= 30 and problems == []


def test_shell_block_parsing():
    text = ("```bash\nA=1 B=2 python -m x.y --f=1  # note\n# comment\nmmd-keras --a \\\n  --b; "
            "launch/z.sh c 'd;e'\n```\n```python\nnot = 'a command'\n```\n")
    assert _shell_block_commands(text) == [["python", "-m", "x.y", "--f=1"],
                                           ["mmd-keras", "--a", "--b"], ["launch/z.sh", "c", "d;e"]]
    assert _program_problem(["python", "-m", "mmd_keras.launch"]) is None
    assert _program_problem(["python", "-m", "mmd_keras.lauch"]).startswith("no module")
    assert _program_problem(["python", "examples/nothing.py"]).startswith("no script")
    assert _program_problem(["mmd-kears"]).startswith("unknown program")


def test_every_documented_evaluation_command_parses(tmp_path, monkeypatch):
    """`python -m mmd_keras.evaluation ...` commands of the pages' shell blocks: every flag exists and
    every value is accepted (``--output`` redirected to a temporary folder; parsing needs no
    TensorFlow and computes nothing)."""
    from mmd_keras.app import evaluate as cli

    commands = [(page, words) for page in DOC_PAGES
                for words in _shell_block_commands(open(os.path.join(REPO, page)).read())
                if words[:2] == ["python", "-m"]
                and words[2] == "mmd_keras.evaluation"]
    assert len(commands) >= 3
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path))
    (tmp_path / "fid_inception.npz").write_bytes(b"")  # where --extractor=fid_inception looks
    for source, command in commands:
        words = [w if not w.startswith("--output=") else f"--output={tmp_path / 'scores.json'}"
                 for w in command[3:]]
        try:
            cli.parse(words)
        except ValueError as error:
            raise AssertionError((source, command, str(error))) from None


def _dry_run_words(words, tmp_path):
    """``words`` as a dry run. A dry run checks that files exist, so the documents' placeholders
    become real ones: ``--data_dir=DIR`` an empty folder, ``--eval_weights=X`` a stand-in."""
    (tmp_path / "DIR").mkdir(exist_ok=True)
    (tmp_path / "weights.npz").write_bytes(b"stand-in")
    stand_ins = {"--data_dir": tmp_path / "DIR", "--eval_weights": tmp_path / "weights.npz"}
    words = [f"{w.split('=')[0]}={stand_ins[w.split('=')[0]]}"
             if w.split("=")[0] in stand_ins else w for w in words]
    return [*words, "--dry_run", f"--workdir={tmp_path / 'run'}"]


def test_every_documented_launcher_command_dry_runs(tmp_path, capsys, stand_in_weights):
    """`python -m mmd_keras.launch ...` and `mmd-keras ...` commands, through `launch.main` (the
    program's whole main; `test_every_launch_script_dry_runs` covers the process boundary)."""
    commands = [(s, c) for s, c in _documented_commands() if not c.startswith("launch/")]
    assert len(commands) >= 12
    for source, command in commands:
        words = shlex.split(command)
        words = words[1:] if words[0] == "mmd-keras" else words[3:]
        if any(w in ("--help", "-h", "--helpfull", "--list_configs") for w in words):
            assert launch.main(["prog", *words]) == 0 and capsys.readouterr().out
            continue
        code = launch.main(["prog", *_dry_run_words(words, tmp_path)])
        captured = capsys.readouterr()
        assert code == 0, (source, command, captured.err[-2000:])
        assert "Resolved configuration" in captured.out, (source, command)


@pytest.mark.slow
def test_every_launch_script_dry_runs(tmp_path, stand_in_weights):
    """The launch/*.sh commands of the README, run as scripts: every flag they pass exists."""
    commands = [(s, c) for s, c in _documented_commands() if c.startswith("launch/")]
    assert {c.split()[0] for _, c in commands} == {
        f"launch/{name}" for name in os.listdir(os.path.join(REPO, "launch"))}
    env = {**ENV, "PATH": f"{os.path.dirname(sys.executable)}:{ENV['PATH']}", "TPU": "local",
           # WORKDIR: where multi_worker_local.sh logs
           "WORKDIR": str(tmp_path / "mw"), "MMD_KERAS_CACHE": str(stand_in_weights)}
    for source, command in commands:
        words = [w for w in shlex.split(command) if not re.match(r"[A-Z0-9_]+=", w)]
        result = subprocess.run([os.path.join(REPO, words[0]),
                                 *_dry_run_words(words[1:], tmp_path)],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (source, command, result.stderr[-2000:])
        output = result.stdout
        if "multi_worker_local.sh" in command:  # each worker writes its own log
            output = "".join(open(f"{tmp_path / 'mw'}{suffix}.worker{i}.log").read()
                             for i, suffix in ((0, ""), (1, "_worker1")))
        assert "Resolved configuration" in output, (source, command, output[-2000:])


@pytest.mark.slow
def test_tpu_script_trains_in_mixed_bfloat16_unless_overridden(tmp_path):
    """launch/tpu_vm.sh passes --mixed_precision=mixed_bfloat16 (TPU matrix units compute in
    bfloat16) before the user's flags, so a later --mixed_precision wins (absl: last value)."""
    env = {**ENV, "PATH": f"{os.path.dirname(sys.executable)}:{ENV['PATH']}", "TPU": "local"}
    resolved = {}
    for extra in ([], ["--mixed_precision=float32"]):
        # The dry run checks the evaluation weights the config's --adaptive_lr needs.
        result = subprocess.run([os.path.join(REPO, "launch", "tpu_vm.sh"), "configs/imagenet64.cfg",
                                 "--dry_run", f"--workdir={tmp_path / 'run'}", "--noadaptive_lr", *extra],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.splitlines()
        assert "--strategy=tpu" in lines and "--tpu=local" in lines
        resolved[tuple(extra)] = [l for l in lines if l.startswith("--mixed_precision=")]
    assert resolved == {(): ["--mixed_precision=mixed_bfloat16"],
                        ("--mixed_precision=float32",): ["--mixed_precision=float32"]}
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tpu_script_reaches_strategy_creation_with_a_fake_tpu(tmp_path):
    """Every flag of launch/tpu_vm.sh exists; with an unreachable TPU name the run stops where
    it creates the TPUStrategy, names --tpu, and writes nothing."""
    env = {**ENV, "PATH": f"{os.path.dirname(sys.executable)}:{ENV['PATH']}",
           "TPU": "no-such-tpu-mmd-keras-test"}
    result = subprocess.run([os.path.join(REPO, "launch", "tpu_vm.sh"), "configs/imagenet64.cfg",
                             f"--workdir={tmp_path / 'run'}", "--steps_per_execution=10"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: Expected `--tpu` to name a reachable TPU")
    assert "no-such-tpu-mmd-keras-test" in result.stderr
    assert not (tmp_path / "run").exists()
