"""Writes projects/<name>/Dockerfile from the one template, infra/docker/service.Dockerfile, with
the build args docker-compose.yml gives that service as the ARG defaults. The release workflow
builds `projects/<name>/Dockerfile` without build args; this keeps those files the template's.

python scripts/render_dockerfiles.py           # rewrite the four files
python scripts/render_dockerfiles.py --check   # exit 1 when one differs (tests/test_infra.py)
"""

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "infra/docker/service.Dockerfile"
ARG_LINE = re.compile(r"^ARG (\w+)=.*$", re.MULTILINE)


def service_args() -> dict[str, dict[str, str]]:
    """{project: build args} for every compose service built from the template."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    found = {}
    for name, service in services.items():
        build = service.get("build")
        if isinstance(build, dict) and build.get("dockerfile") == TEMPLATE:
            args = {k: str(v) for k, v in build.get("args", {}).items()}
            found[args["PROJECT"]] = args | {"SERVICE": name}
    return found


def render(args: dict[str, str]) -> str:
    template = (ROOT / TEMPLATE).read_text()
    unknown = set(args) - set(ARG_LINE.findall(template)) - {"SERVICE"}
    if unknown:
        raise ValueError(f"{args['SERVICE']}: build args the template lacks: {sorted(unknown)}")

    def default(match: re.Match) -> str:
        name = match.group(1)
        return f'ARG {name}="{args[name]}"' if name in args else match.group(0)

    body = template[template.index("ARG BASE") :]
    header = (
        f"# {args['SERVICE']}: generated from {TEMPLATE} by scripts/render_dockerfiles.py with\n"
        "# docker-compose.yml's build args as defaults. Edit those two, not this file.\n"
        "# Build from the repository root (models are mounted, see docker-compose.yml):\n"
        f"#   docker build -f projects/{args['PROJECT']}/Dockerfile -t {args['SERVICE']} .\n"
    )
    return header + ARG_LINE.sub(default, body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    check = parser.parse_args().check
    stale = []
    for project, args in sorted(service_args().items()):
        path = ROOT / "projects" / project / "Dockerfile"
        text = render(args)
        if path.read_text() != text:
            stale.append(str(path.relative_to(ROOT)))
            if not check:
                path.write_text(text)
    if check and stale:
        print("out of date (run scripts/render_dockerfiles.py):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
