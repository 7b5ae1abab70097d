"""The first things people type into an en↔zh translator — greetings, thanks, apologies, wishes — with the
translations a speaker accepts. Exact match after trailing punctuation and case: these phrases have few right
answers, and BLEU on a held-out split says little about them (each is one short pair among thousands).

    python -m aigc_hub.evaluation.everyday_phrases [MODEL]      # the shipped translator by default
"""

from __future__ import annotations

import re
import sys
from typing import Callable

EN_ZH = {
    "Hello.": ["你好"], "Hi.": ["你好", "嗨"], "Thank you.": ["谢谢", "谢谢你"], "Thanks.": ["谢谢", "感谢"],
    "Good morning.": ["早上好", "早安"], "Good night.": ["晚安"], "Goodbye.": ["再见"],
    "How are you?": ["你好吗"], "Sorry.": ["对不起", "抱歉"],
    "Excuse me.": ["打扰一下", "对不起", "劳驾", "不好意思"],
    "Nice to meet you.": ["很高兴见到你", "很高兴认识你", "见到你真好", "认识你很高兴"], "See you tomorrow.": ["明天见"],
    "Welcome.": ["欢迎"], "I'm sorry.": ["对不起", "我很抱歉", "抱歉"],
    "Thank you very much.": ["非常感谢", "非常谢谢你", "非常感谢你", "谢谢你", "太感谢了", "多谢"],
    "Happy birthday!": ["生日快乐"], "Good luck!": ["祝你好运", "好运"], "What's your name?": ["你叫什么名字"],
    "I love you.": ["我爱你"], "Help!": ["救命"],
}
ZH_EN = {
    "你好。": ["hello", "hi"], "谢谢。": ["thank you", "thanks"], "早上好。": ["good morning"], "晚安。": ["good night"],
    "再见。": ["goodbye", "bye", "see you", "see you again"], "对不起。": ["sorry", "i'm sorry", "i am sorry"],
    "你好吗？": ["how are you", "how are you doing"],
    "很高兴认识你。": ["nice to meet you", "pleased to meet you", "glad to meet you", "i'm glad to know you",
                "i'm glad to meet you"],
    "明天见。": ["see you tomorrow"], "欢迎。": ["welcome"], "生日快乐！": ["happy birthday"],
    "祝你好运！": ["good luck"], "你叫什么名字？": ["what's your name", "what is your name"], "我爱你。": ["i love you"],
    "救命！": ["help"], "非常感谢。": ["thank you very much", "thanks a lot", "many thanks"],
    "不客气。": ["you're welcome", "you are welcome", "not at all", "don't mention it"],
    "没关系。": ["it doesn't matter", "never mind", "it's ok", "it's okay", "that's ok", "that's all right",
             "no problem", "it's all right"],
    "请。": ["please"], "干杯！": ["cheers"],
}
TABLES = {("en", "zh"): EN_ZH, ("zh", "en"): ZH_EN}


def normalize(text: str) -> str:
    """The form two translations are compared in: no trailing punctuation or spaces, lower case."""
    return re.sub(r"[\s。！？.!?，,]+$", "", text.strip()).lower()


def score(translate: Callable[[list[str], str, str], list[str]]) -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
    """Per direction, (phrase, translation, accepted) for every phrase; `translate(lines, src, tgt)` → lines."""
    out = {}
    for (src, tgt), table in TABLES.items():
        got = translate(list(table), src, tgt)
        out[src, tgt] = [(p, g, normalize(g) in {normalize(a) for a in table[p]}) for p, g in zip(table, got)]
    return out


def main(argv: list[str] | None = None) -> None:
    from ..services import ModelRegistry, TranslationService

    ref = (argv if argv is not None else sys.argv[1:] or ["aigc-hub/translator-en-zh"])[0]
    service = TranslationService(ModelRegistry())
    results = score(lambda lines, src, tgt: service.translate(ref, lines, src, tgt, beams=4).text.split("\n"))
    for (src, tgt), rows in results.items():
        print(f"{src}→{tgt}: {sum(ok for *_, ok in rows)} / {len(rows)} accepted")
        for phrase, got, ok in rows:
            if not ok:
                print(f"  {phrase} → {got}")


if __name__ == "__main__":
    main()
