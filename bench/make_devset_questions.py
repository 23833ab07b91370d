"""Write docqa's two extra development question sets from hand-written lists.

    python bench/make_devset_questions.py [--questions PATH]

Reads the dev set's FAQ records (``/work/shared/eval/faq-dev/questions.jsonl``, see
``/work/shared/eval/README.md``) and writes, deterministically:

- ``bench/data/devset_unanswerable.jsonl``: in-domain questions that no FAQ answer of their
  product answers. Each item names the regular expressions of its key terms; the script greps them
  (case-insensitive) over every answer of that product, in every language the FAQ has, and stops if
  one matches. Terms that do occur in the FAQ in an unrelated sense are not in that list; the note
  says which and why they do not answer the question.
- ``bench/data/devset_crosslang.jsonl``: questions of the two bilingual FAQs (WeeChat, Securing
  Debian Manual) whose gold is the answer of the same FAQ entry in the other language, for an
  index holding only that language's answers (the gold document is ``answers/<gold_id>.txt``).
  Pairs were matched by reading both answers; the script checks that both records exist, that the
  languages are right, and that the two answers share their language-independent tokens (commands,
  option names, URLs, numbers).

See ``bench/data/NOTICE.md`` for where the texts come from and their licences.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

QUESTIONS = Path("/work/shared/eval/faq-dev/questions.jsonl")
OUT = Path(__file__).resolve().parent / "data"

# ---------------------------------------------------------------------------------------------
# 1. In-domain unanswerable questions: (product, lang, question, key-term regexes, note).
#    Every regex must match no answer of the product (all its languages).
# ---------------------------------------------------------------------------------------------
UNANSWERABLE: list[tuple[str, str, str, list[str], str]] = [
    # Python 3.11 FAQ (en)
    (
        "python",
        "en",
        "Does the Python Software Foundation offer a paid phone hotline for technical support?",
        [r"phone", r"hotline", r"commercial support|support contract|paid support"],
        "the PSF entry describes the foundation only; help is mailing lists/newsgroups, no phone support",
    ),
    (
        "python",
        "en",
        "Is there an official Python 3.11 app for the iPhone or iPad in the App Store?",
        [r"\biOS\b", r"iPhone", r"iPad", r"app store"],
        "",
    ),
    (
        "python",
        "en",
        "Can I install Python 3.11 on my Android phone, and which app should I use?",
        [r"Android", r"phone"],
        "",
    ),
    (
        "python",
        "en",
        "Which web framework, Django or Flask, does Guido van Rossum personally recommend?",
        [r"Django", r"Flask", r"web framework"],
        "'favorite' occurs only in 'cite your favorite book' (en-058)",
    ),
    (
        "python",
        "en",
        "Does Python 3.11 run on the Raspberry Pi Pico microcontroller?",
        [r"Raspberry", r"\bPico\b", r"micro ?python", r"microcontroller"],
        "",
    ),
    (
        "python",
        "en",
        "Can CPython 3.11 use my NVIDIA graphics card (CUDA) to speed up ordinary Python code?",
        [r"\bGPU", r"graphics card", r"CUDA", r"NVIDIA"],
        "the speed-up entry (en-135) gives profiling/algorithm advice, nothing about GPUs",
    ),
    (
        "python",
        "en",
        "Does the Python Software Foundation offer an official Python programmer certification exam?",
        [r"certif", r"\bexams?\b"],
        "'exam' occurs only inside 'example'",
    ),
    (
        "python",
        "en",
        "How much does a ticket for PyCon US cost?",
        [r"PyCon", r"ticket", r"price"],
        "en-065 mentions proceedings of past Python conferences only; 'cost' only as runtime cost",
    ),
    (
        "python",
        "en",
        "Is my laptop's hardware warranty void if I delete the Python that came preinstalled?",
        [r"warrant", r"laptop"],
        "en-074 'Can I delete Python?' says nothing about warranties",
    ),
    # R FAQ (en)
    (
        "r",
        "en",
        "Is there a telephone support line for R, and what is the number?",
        [r"phone", r"hotline"],
        "only mailing lists are described (en-008)",
    ),
    (
        "r",
        "en",
        "When is R 5.0.0 scheduled to be released?",
        [r"R 5", r"5\.0\.0", r"release date", r"schedul"],
        "en-003 explains r-release/r-patched/r-devel, gives no future dates",
    ),
    (
        "r",
        "en",
        "Is there an official R app for the iPad or iPhone?",
        [r"\biOS\b", r"iPhone", r"iPad", r"app store", r"Android", r"tablet"],
        "",
    ),
    (
        "r",
        "en",
        "Can base R run my linear models on an NVIDIA GPU with CUDA out of the box?",
        [r"\bGPU", r"CUDA", r"NVIDIA", r"graphics card"],
        "",
    ),
    (
        "r",
        "en",
        "Does the R Foundation offer an official certification exam for R programmers?",
        [r"certif", r"\bexams?\b"],
        "en-012 describes the R Foundation without any certification",
    ),
    (
        "r",
        "en",
        "Can I call R functions directly from cells in Microsoft Excel 365?",
        [r"Excel", r"spreadsheet", r"\bcells?\b"],
        "'Microsoft' occurs only as Microsoft R, a distribution of R (en-018)",
    ),
    (
        "r",
        "en",
        "How many people attend the useR! conference each year, and where is the next one?",
        [r"useR!", r"conference", r"attend"],
        "",
    ),
    (
        "r",
        "en",
        "Can I get a refund for a donation I made to the R Foundation?",
        [r"refund", r"donat"],
        "en-012 mentions supporting the R project, not donations or refunds",
    ),
    (
        "r",
        "en",
        "Does the R Foundation provide free cloud servers, e.g. on AWS or Azure, for running large R jobs?",
        [r"\bcloud", r"\bAWS\b", r"Azure"],
        "",
    ),
    # Zsh FAQ (en)
    (
        "zsh",
        "en",
        "Is there an official zsh app for the iPhone or iPad?",
        [r"\biOS\b", r"iPhone", r"iPad", r"app store", r"Android"],
        "",
    ),
    (
        "zsh",
        "en",
        "When is zsh 6.0 going to be released?",
        [r"6\.0", r"release date", r"roadmap"],
        "en-004 gives the latest version, en-050 a wish-list without dates",
    ),
    (
        "zsh",
        "en",
        "Can I buy a commercial support contract for zsh from the zsh developers?",
        [r"commercial", r"contract", r"\bpaid\b", r"\bbuy\b"],
        "en-049 only names the mailing lists",
    ),
    (
        "zsh",
        "en",
        "Is oh-my-zsh an official part of zsh, and do the zsh developers support it?",
        [r"oh-my", r"oh my zsh", r"\bomz\b"],
        "en-033 mentions zsh's own prompt theme system, not oh-my-zsh",
    ),
    (
        "zsh",
        "en",
        "How much faster does zsh start up than fish in benchmarks?",
        [r"\bfish\b", r"benchmark", r"faster", r"start ?up time"],
        "",
    ),
    (
        "zsh",
        "en",
        "Does zsh have built-in AI command suggestions like ChatGPT?",
        [r"ChatGPT", r"\bAI\b", r"artificial", r"\bLLM"],
        "'suggested' occurs only in en-050's wish-list intro",
    ),
    (
        "zsh",
        "en",
        "Is the name 'zsh' a registered trademark?",
        [r"trademark", r"registered"],
        "en-001 only says zsh has a Berkeley style copyright",
    ),
    ("zsh", "en", "Can I donate money to the zsh developers, and how?", [r"donat", r"money", r"sponsor"], ""),
    (
        "zsh",
        "en",
        "Will zsh be the default login shell in the next Ubuntu release?",
        [r"Ubuntu", r"default shell", r"Debian"],
        "en-006 covers making zsh your own login shell only",
    ),
    # WeeChat FAQ (en + es)
    (
        "weechat",
        "en",
        "When will WeeChat 5.0 be released?",
        [r"5\.0", r"roadmap", r"next version", r"pr[oó]xima versi[oó]n", r"release date"],
        "",
    ),
    (
        "weechat",
        "en",
        "Can I use WeeChat to chat on Discord?",
        [r"Discord"],
        "Bitlbee (en-043) is mentioned only about voice-mode messages",
    ),
    (
        "weechat",
        "en",
        "Does WeeChat support voice or video calls with other users?",
        [r"video", r"\bcalls?\b", r"llamada", r"videollamada"],
        "en-043/es-044 are about IRC voice mode (+v), not audio calls",
    ),
    (
        "weechat",
        "en",
        "Which terminal emulator do the WeeChat developers personally prefer?",
        [r"favou?rite", r"favorit", r"\bprefer\b", r"personally"],
        "terminals are named only as examples for mouse/selection issues; 'Preferences' is a menu name",
    ),
    ("weechat", "en", "Can WeeChat connect to WhatsApp?", [r"WhatsApp"], ""),
    ("weechat", "es", "¿Puedo usar WeeChat para chatear en Telegram?", [r"Telegram"], ""),
    (
        "weechat",
        "es",
        "¿Venden camisetas o pegatinas oficiales de WeeChat?",
        [r"camiseta", r"pegatina", r"shirt", r"sticker", r"merch", r"tienda", r"\bshop"],
        "es-061/en-060 only say you can give money (donation page)",
    ),
    (
        "weechat",
        "es",
        "¿Hay un número de teléfono de soporte técnico para WeeChat?",
        [r"tel[eé]fono", r"telef[oó]nic", r"phone"],
        "es-060/en-059 say to contact developers via IRC or mail; 'support channel' is an IRC channel",
    ),
    ("weechat", "es", "¿WeeChat tiene integración con la red Matrix?", [r"Matrix"], ""),
    # Securing Debian Manual FAQ (en + es); note that en-001/es-001 hold most of chapter 12.
    (
        "harden",
        "en",
        "How much does a commercial Debian security support contract cost per server?",
        [r"contract", r"contrat", r"per server", r"precio", r"price"],
        "'cost' occurs only in 'certification costs money' (en-004)",
    ),
    (
        "harden",
        "en",
        "Which cloud provider does the Debian security team recommend for hosting a hardened server?",
        [r"\bcloud", r"\bnube\b", r"\bAWS\b", r"Azure", r"hosting", r"proveedor"],
        "'provider' occurs only in 'contact your network provider' about SYN floods (en-019)",
    ),
    (
        "harden",
        "en",
        "Which antivirus do the Debian security team members personally run on their laptops?",
        [r"antivirus", r"anti-virus", r"laptop", r"port[aá]til", r"personally"],
        "'virus' occurs only in sophos.com/virusinfo URLs about Linux worms (en-002)",
    ),
    (
        "harden",
        "en",
        "How do I enable Secure Boot together with TPM-based full-disk encryption on Debian?",
        [r"Secure ?Boot", r"\bTPM\b", r"arranque seguro", r"encrypt", r"cifrad", r"LUKS"],
        "",
    ),
    (
        "harden",
        "en",
        "How do I secure Docker containers running on a Debian host?",
        [r"Docker", r"container", r"contenedor", r"Kubernetes", r"Podman"],
        "",
    ),
    (
        "harden",
        "es",
        "¿Tiene Debian un programa de recompensas (bug bounty) que pague por descubrir vulnerabilidades?",
        [r"bounty", r"recompensa", r"reward", r"\bpagar?\b", r"\bpays?\b"],
        "es-008/en-023 only say to e-mail the security team",
    ),
    (
        "harden",
        "es",
        "¿Se puede comprar una versión impresa en papel del Manual de Seguridad de Debian?",
        [r"impresa", r"papel", r"paper", r"\bcomprar", r"\bbuy\b", r"printed"],
        "'print'/'impresión' occur only about ssh banners and printer daemons",
    ),
    (
        "harden",
        "es",
        "¿Cómo configuro la autenticación en dos factores con una llave USB YubiKey para entrar por SSH?",
        [r"YubiKey", r"dos factores", r"two.factor", r"\b2FA\b", r"\bOTP\b", r"\bUSB\b", r"llave"],
        "",
    ),
    (
        "harden",
        "es",
        "¿Qué debo hacer para proteger los datos de mi portátil Debian si me lo roban?",
        [r"port[aá]til", r"laptop", r"\brob(o|an|ado|ada)\b", r"stolen", r"theft"],
        "es-006/en-021 are about network break-ins; BIOS/lilo passwords appear only in the lost root "
        "password entry inside en-001/es-001, nothing on stolen hardware or data at rest",
    ),
]

# ---------------------------------------------------------------------------------------------
# 2. Cross-language pairs: (question id, gold id), the gold being the same FAQ entry in the other
#    language. WeeChat: es-001 = en-001; es-002 ("Why choose WeeChat?") has no English entry; from
#    there es-(k+1) = en-k. Securing Debian: the Spanish FAQ keeps 8 of the 23 English entries.
#    Left out: pairs whose answers are identical/untranslated English on the Spanish side
#    (weechat es-003, es-037, es-040, es-050, es-061) and harden es-001/en-001, whose answers
#    swallowed most of the FAQ chapter. English-question pairs use a Spanish gold that is
#    mostly Spanish text.
# ---------------------------------------------------------------------------------------------
CROSSLANG_ES_TO_EN: list[tuple[str, str]] = [
    ("harden-faq-es-002", "harden-faq-en-003"),  # Bugtraq bugs
    ("harden-faq-es-006", "harden-faq-en-021"),  # break-in ("interrupción" in the Spanish FAQ)
    ("harden-faq-es-008", "harden-faq-en-023"),  # program X is vulnerable
    ("weechat-faq-es-001", "weechat-faq-en-001"),  # name
    ("weechat-faq-es-008", "weechat-faq-en-007"),  # unicode chars, wcwidth
    ("weechat-faq-es-013", "weechat-faq-en-012"),  # buflist on the left
    ("weechat-faq-es-015", "weechat-faq-en-014"),  # nick length / alignment
    ("weechat-faq-es-017", "weechat-faq-en-016"),  # multi-line input
    ("weechat-faq-es-022", "weechat-faq-en-021"),  # timezone
    ("weechat-faq-es-026", "weechat-faq-en-025"),  # screen ~0 ~1 bracketed paste
    ("weechat-faq-es-028", "weechat-faq-en-027"),  # meta keys in xterm
    ("weechat-faq-es-032", "weechat-faq-en-031"),  # mouse not working
    ("weechat-faq-es-036", "weechat-faq-en-035"),  # TLS handshake failed
    ("weechat-faq-es-039", "weechat-faq-en-038"),  # identified before joining (SASL)
    ("weechat-faq-es-045", "weechat-faq-en-044"),  # away nicks in nicklist
    ("weechat-faq-es-049", "weechat-faq-en-048"),  # OpenBSD plugins
]
CROSSLANG_EN_TO_ES: list[tuple[str, str]] = [
    ("harden-faq-en-005", "harden-faq-es-003"),  # hardening programs (bastille)
    ("harden-faq-en-006", "harden-faq-es-004"),  # which XYZ service: see TEXTS_DIFFER
    ("harden-faq-en-009", "harden-faq-es-005"),  # are all packages safe
    ("harden-faq-en-022", "harden-faq-es-007"),  # trace an attack
    ("weechat-faq-en-003", "weechat-faq-es-004"),  # compile after git clone
    ("weechat-faq-en-004", "weechat-faq-es-005"),  # macOS install
    ("weechat-faq-en-005", "weechat-faq-es-006"),  # launched, lost
    ("weechat-faq-en-006", "weechat-faq-es-007"),  # accented chars
    ("weechat-faq-en-008", "weechat-faq-es-009"),  # bars not filled, TERM
    ("weechat-faq-en-009", "weechat-faq-es-010"),  # weird chars under screen/tmux
    ("weechat-faq-en-011", "weechat-faq-es-012"),  # buffers vs windows
    ("weechat-faq-en-015", "weechat-faq-es-016"),  # hotlist [H: ...]
    ("weechat-faq-en-023", "weechat-faq-es-024"),  # search text in buffer
    ("weechat-faq-en-040", "weechat-faq-es-041"),  # /ignore vs /filter
    ("weechat-faq-en-053", "weechat-faq-es-054"),  # less memory
    ("weechat-faq-en-057", "weechat-faq-es-058"),  # gdb threads error
]

# Same entry, exactly translated question, but the two manuals carry different revisions of the
# answer: the English one keeps only the checklist of questions, the Spanish one (12.1.1.6 there,
# after an untranslated English copy of the entry as 12.1.1.5) only the introduction about
# choosing among packages. Exempt from the shared-token check.
TEXTS_DIFFER = {("harden-faq-en-006", "harden-faq-es-004")}


def _product(record: dict) -> str:
    return record["source"].split("-")[0]


def unanswerable(records: list[dict]) -> list[dict]:
    rows, counters = [], {}
    for product, lang, question, terms, note in UNANSWERABLE:
        answers = [r for r in records if _product(r) == product]
        langs = "+".join(sorted({r["lang"] for r in answers}))
        for term in terms:
            hits = [r["id"] for r in answers if re.search(term, r["answer"], re.I)]
            if hits:
                raise SystemExit(f"{question!r}: term {term!r} found in {hits}")
        n = counters[(product, lang)] = counters.get((product, lang), 0) + 1
        quoted = ", ".join(f"'{t}'" for t in terms)
        checked = (
            f"grepped {quoted} (case-insensitive regex) over all {len(answers)} {product} "
            f"FAQ answers ({langs}): no hit, no answer covers it"
        )
        rows.append(
            {
                "id": f"unans-{product}-{lang}-{n:02d}",
                "product": product,
                "lang": lang,
                "question": question,
                "answerable": False,
                "checked": checked + (f"; {note}" if note else ""),
            }
        )
    return rows


def _shared_tokens(a: str, b: str) -> set[str]:
    """Tokens of 5+ characters found in both texts: commands, options, URLs, names, numbers."""

    def tokens(text: str) -> set[str]:
        return {t.lower().strip(".,;:()\"'") for t in text.split() if len(t) >= 5}

    return tokens(a) & tokens(b)


def crosslang(records: list[dict]) -> list[dict]:
    by_id = {r["id"]: r for r in records}
    rows, counters = [], {}
    for pairs, qlang, glang in ((CROSSLANG_ES_TO_EN, "es", "en"), (CROSSLANG_EN_TO_ES, "en", "es")):
        for qid, gid in pairs:
            q, g = by_id[qid], by_id[gid]
            assert (q["lang"], g["lang"]) == (qlang, glang), (qid, gid)
            assert q["source"] == g["source"] and q["answer"] != g["answer"], (qid, gid)
            if (qid, gid) not in TEXTS_DIFFER:
                assert _shared_tokens(q["answer"], g["answer"]), f"{qid}/{gid}: answers share no token"
            product = _product(q)
            n = counters[(product, qlang)] = counters.get((product, qlang), 0) + 1
            rows.append(
                {
                    "id": f"xl-{product}-{qlang}-{glang}-{n:02d}",
                    "product": product,
                    "lang": qlang,
                    "question": q["question"],
                    "gold_id": gid,
                    "gold_lang": glang,
                    "answerable": True,
                }
            )
    return rows


def _write(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path}: {len(rows)} questions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with args.questions.open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    _write(unanswerable(records), args.out / "devset_unanswerable.jsonl")
    _write(crosslang(records), args.out / "devset_crosslang.jsonl")


if __name__ == "__main__":
    main()
