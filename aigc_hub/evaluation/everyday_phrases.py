"""The first things people type into an en↔zh translator — greetings, thanks, apologies, wishes — with the
translations a speaker accepts. Exact match after trailing punctuation and case: these phrases have few right
answers, and BLEU on a held-out split says little about them (each is one short pair among thousands).

    python -m aigc_hub.evaluation.everyday_phrases [MODEL]      # the shipped translator by default

The starter trains on these phrases (its phrasebook), so for it they check what was learned; UNSEEN, the same kinds of
phrase in no training pair, checks whether it carries over.
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

# The same kinds of phrase with a name or a word more, in neither Tatoeba's pairs nor the starter's phrasebook
# (training/recipes/phrasebook-en-zh.jsonl, which holds the phrases above): whether what was learned carries over.
EN_ZH_UNSEEN = {
    "Hello, Mary.": ["你好，玛丽", "玛丽，你好"], "Good morning, everyone.": ["大家早上好", "早上好，大家", "大家早"],
    "Thank you, Mary.": ["谢谢你，玛丽", "谢谢，玛丽", "玛丽，谢谢你", "玛丽，谢谢"],
    "Goodbye, Tom.": ["再见，汤姆", "汤姆，再见"], "Good night, Mom.": ["晚安，妈妈", "妈妈，晚安"],
    "Happy birthday, Tom!": ["生日快乐，汤姆", "汤姆，生日快乐", "祝汤姆生日快乐"],
    "Sorry, I don't know.": ["对不起，我不知道", "抱歉，我不知道", "不好意思，我不知道"],
    "See you on Monday.": ["星期一见", "周一见"], "Welcome to Beijing.": ["欢迎来到北京", "欢迎到北京来"],
    "Nice to meet you, Mary.": ["很高兴认识你，玛丽", "玛丽，很高兴认识你", "很高兴见到你，玛丽"],
}
ZH_EN_UNSEEN = {
    "汤姆，你好。": ["hello, tom", "hi, tom", "tom, hello"], "大家晚上好。": ["good evening, everyone", "good evening everyone"],
    "谢谢你，汤姆。": ["thank you, tom", "thanks, tom"], "妈妈，晚安。": ["good night, mom", "good night, mother"],
    "对不起，我不明白。": ["sorry, i don't understand", "i'm sorry, i don't understand", "i'm sorry, but i don't understand"],
    "明天早上见。": ["see you tomorrow morning"], "祝你生日快乐，玛丽！": ["happy birthday, mary"],
    "非常感谢你的帮助。": ["thank you very much for your help", "thanks a lot for your help", "thank you so much for your help"],
    "欢迎来到北京。": ["welcome to beijing"], "玛丽，再见。": ["goodbye, mary", "bye, mary", "see you, mary"],
}
UNSEEN = {("en", "zh"): EN_ZH_UNSEEN, ("zh", "en"): ZH_EN_UNSEEN}


def normalize(text: str) -> str:
    """The form two translations are compared in: no trailing punctuation or spaces, lower case."""
    return re.sub(r"[\s。！？.!?，,]+$", "", text.strip()).lower()


def score(translate: Callable[[list[str], str, str], list[str]],
          tables: dict = TABLES) -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
    """Per direction, (phrase, translation, accepted) for every phrase; `translate(lines, src, tgt)` → lines."""
    out = {}
    for (src, tgt), table in tables.items():
        got = translate(list(table), src, tgt)
        out[src, tgt] = [(p, g, normalize(g) in {normalize(a) for a in table[p]}) for p, g in zip(table, got)]
    return out


def main(argv: list[str] | None = None) -> None:
    from ..services import ModelRegistry, TranslationService

    ref = (argv if argv is not None else sys.argv[1:] or ["aigc-hub/translator-en-zh"])[0]
    service = TranslationService(ModelRegistry())

    def translate(lines: list[str], src: str, tgt: str) -> list[str]:
        return service.translate(ref, lines, src, tgt, beams=4).text.split("\n")

    for title, tables in [("everyday phrases", TABLES), ("the same with a name or a word more", UNSEEN)]:
        print(title)
        results = score(translate, tables)
        for (src, tgt), rows in results.items():
            print(f"  {src}→{tgt}: {sum(ok for *_, ok in rows)} / {len(rows)} accepted")
            for phrase, got, ok in rows:
                if not ok:
                    print(f"    {phrase} → {got}")


if __name__ == "__main__":
    main()
