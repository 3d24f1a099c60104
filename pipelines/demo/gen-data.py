#!/usr/bin/env python3
"""gen-data.py: write the data `make demo` runs on (testdata/demo/).

    python3 pipelines/demo/gen-data.py [--out DIR] [--no-model]

Every word list and sentence template below was written for this project;
nothing is taken from another corpus. Each output file has its own fixed
seed, so a run reproduces the committed files byte for byte (Python's
random.Random with an integer seed is stable across Python 3 releases).
The demo uses the committed files; run this only to change them, then run
t/t6000-demo-data.t.

Files written into DIR (default: testdata/demo next to this script's
pipelines/ directory):

  base-corpus.txt   English-like lines (ASCII) that train the base tokenizer.
  base.model        The bundled base tokenizer, a tiny stand-in for LLaMA's:
                    SentencePiece BPE, 500 pieces, byte fallback, identity
                    normalization, digits split. It knows no Chinese, so
                    Chinese text falls back to 3 byte pieces per character.
                    Made by spm_train (skipped with --no-model), as:

        cd DIR && spm_train --input=base-corpus.txt --model_prefix=base \\
            --model_type=bpe --vocab_size=500 --byte_fallback=true \\
            --character_coverage=1.0 --split_digits=true \\
            --normalization_rule_name=identity \\
            --remove_extra_whitespaces=false \\
            --allow_whitespace_only_pieces=true --num_threads=1 \\
            --minloglevel=2 && rm base.vocab

  zh-corpus.txt     Chinese documents, one per line (no blank lines): the
                    text the Chinese SentencePiece model is trained on and
                    the pre-training corpus.
  ner-train.jsonl   MSRA-style NER records, one JSON object per line:
  ner-test.jsonl      {"text": "...", "entity_list": [{"entity": "...",
                      "entity_type": "PER|LOC|ORG", "entity_index":
                      {"begin": B, "end": E}}]}
                    B and E count Unicode code points, B inclusive, E
                    exclusive, so text[B:E] == entity. About 30% of records
                    have no entity, the others 1 to 3. Training records
                    draw entities from fixed pools (each seen a few times);
                    test records take about half their entities from those
                    seen in training and half new (new name combinations,
                    places and organisations never in a training record), so
                    held-out F1 measures generalisation. No test text is a
                    training text.
"""
import argparse
import json
import os
import random
import string
import subprocess
import sys

N_BASE_LINES = 400
N_ZH_DOCS = 2000
N_NER_TRAIN = 800
N_NER_TEST = 100
NONE_SHARE = 0.30

SPM_BASE_ARGS = [
    "--input=base-corpus.txt", "--model_prefix=base",
    "--model_type=bpe", "--vocab_size=500", "--byte_fallback=true",
    "--character_coverage=1.0", "--split_digits=true",
    "--normalization_rule_name=identity",
    "--remove_extra_whitespaces=false",
    "--allow_whitespace_only_pieces=true", "--num_threads=1",
    "--minloglevel=2",
]


def words(s):
    return s.split()


# ---- English-like text for the base tokenizer ----

EN_NAMES = words("Ada Ben Cora Dan Eva Finn Gus Hana Ivo Jade Kai Lena Milo "
        "Nora Otto Pia Quin Rosa Sam Tess Uma Vic Wren Yara Zeke")
EN_ADJ = words("small quiet bright old green narrow heavy warm cold busy "
        "empty careful quick slow little broken new strange clever "
        "tired happy wooden silver open")
EN_NOUN = words("cat dog river window garden lamp table letter train road "
        "bridge market cloud boat bird tree house door clock book "
        "field hill farmer teacher kettle ladder basket village")
EN_VERB = words("watched found painted carried opened counted followed "
        "mended visited crossed pushed cleaned moved lifted passed "
        "named sold wrote read fixed")
EN_PREP = words("near behind under over beside inside across along past")
EN_DAY = words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
EN_MONTH = words("January March April June July September October December")
EN_TOWN = words("Ashford Brookvale Cedarton Dunmore Elmstead Fairhaven "
        "Glenrock Hollowmere Ironbridge Juniper Kestrel Larkfield")

EN_TEMPLATES = [
    "The {adj} {noun} {verb} the {noun2} {prep} the {noun3}.",
    "{name} {verb} the {adj} {noun} in {town} on {day}.",
    "On {day}, {name} bought {n} {noun}s for {m} dollars.",
    "{name} said: \"The {noun} is {adj} today, and the {noun2} is {adj2}.\"",
    "In {month} {year}, the {noun}s of {town} were {adj} and {adj2}.",
    "Why is the {noun} so {adj}? Nobody in {town} knows.",
    "Step {n}: put the {noun} {prep} the {noun2}, then wait {m} minutes.",
    "{name} and {name2} walked {prep} the {adj} {noun} until {n} o'clock.",
    "A {adj} {noun} is better than a {adj2} {noun2}, said {name}.",
    "Chapter {n}: The {adj} {noun} of {town}",
    "There were {n} {noun}s, {m} {noun2}s and one {adj} {noun3}.",
    "If the {noun} is {adj}, {name} {verb} it; if not, {name2} does.",
    "Total: {n}.{m} kg of {noun}s ({adj}), sent to {town} on {month} {n2}.",
    "x = {n} + {m}; y = x * {n2}; print(y)",
    "The {noun} {verb} the {noun2}, and the {noun2} {verb2} the {noun3}.",
    "Dear {name}, thank you for the {adj} {noun}. Yours, {name2}.",
]


def en_line(r):
    pick = r.choice
    parts = []
    for _ in range(r.choice([1, 1, 2, 3])):
        t = pick(EN_TEMPLATES)
        parts.append(t.format(
            adj=pick(EN_ADJ), adj2=pick(EN_ADJ), noun=pick(EN_NOUN),
            noun2=pick(EN_NOUN), noun3=pick(EN_NOUN), verb=pick(EN_VERB),
            verb2=pick(EN_VERB), prep=pick(EN_PREP), name=pick(EN_NAMES),
            name2=pick(EN_NAMES), town=pick(EN_TOWN), day=pick(EN_DAY),
            month=pick(EN_MONTH), year=r.randint(1890, 2030),
            n=r.randint(1, 99), n2=r.randint(1, 31), m=r.randint(0, 999)))
    return " ".join(parts)


# ---- Chinese word lists ----

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐韩冯邓曹彭曾田董潘袁蔡蒋余杜叶"
GIVEN = ("伟芳娜敏静丽强磊军洋勇杰明超秀平刚英华玉兰红建文辉宁云峰波鹏宇"
         "浩凯晨雪琳欣博远志海东春秋梅松晓嘉思雨安然帆航阳立新光德永福佳")
CITIES = words("北京 上海 广州 深圳 杭州 南京 成都 武汉 西安 重庆 天津 苏州 "
               "长沙 青岛 昆明 厦门 大连 沈阳 哈尔滨 兰州 贵阳 南宁 海口 "
               "福州 合肥 济南 郑州 洛阳 桂林 大理")
COUNTRIES = words("日本 法国 德国 巴西 埃及 英国 意大利 加拿大 新加坡 西班牙")
NATURE = words("黄河 长江 泰山 西湖 太湖 黄山 天山 华山")
PLACE_HEAD = words("青石 白沙 云溪 松林 金川 桃源 龙泉 清河 长岭 石门 南湖 "
                   "东坪 柳塘 枫桥 梅岭 月湾 凤凰 红岩 碧水 双溪 三江 五峰 "
                   "白马 杏花 荷塘 竹溪 沙河 望海 平川 玉泉")
PLACE_TAIL = words("镇 村 县 乡 湾 岛 山 港 河 市")
ORG_HEAD = words("星河 华光 远航 长风 红星 青松 宏达 金穗 蓝天 启明 晨光 "
                 "万通 天合 博雅 新禾 海川 明德 东方 朝阳 安泰 北辰 百川")
ORG_TAIL = words("科技公司 食品公司 纺织厂 机械厂 第一中学 实验小学 师范大学 "
                 "理工学院 人民医院 气象局 农科所 研究院 出版社 电视台 "
                 "足球俱乐部 合唱团 消防大队 农业合作社 物流集团 银行 "
                 "交响乐团 律师事务所 建筑公司 航空公司 报社 体育学校")
ORG_WHOLE = words("联合国 世界卫生组织 中国科学院 国家气象局 红十字会 "
                  "中国作家协会 国家图书馆")

TIMES = words("昨天 今天 上午 下午 去年 今年春天 上周末 三月初 八月中旬 "
              "星期二 清晨 傍晚 前天晚上 国庆节期间 寒假里 五年前 上个月 "
              "去年冬天 元旦那天 中秋节 周五下午 开学第一天 暑假期间 前不久")
LATER = words("明天 后天 下周一 下个月 月底 明年春天 这个周末 三天后 "
              "国庆节以后 下星期三")
JOBS = words("工程师 教师 医生 会计 记者 厨师 司机 护士 研究员 经理 教练 "
             "设计师 律师 翻译 程序员 摄影师 邮递员 售货员")
EVENTS = words("运动会 读书会 技术交流会 新年音乐会 植树活动 科普讲座 "
               "招聘会 摄影展 围棋比赛 马拉松 书法展 美食节 灯会 歌唱比赛 "
               "龙舟赛 风筝节")
FACILITIES = words("图书馆 体育馆 公园 实验室 仓库 停车场 游泳馆 养老院 "
                   "幼儿园 电影院 菜市场 医务室 篮球场 博物馆")
CROPS = words("水稻 小麦 玉米 茶叶 苹果 土豆 大豆 棉花 葡萄 西瓜 花生 梨")
GOODS = words("自行车 电脑 茶具 雨伞 围巾 书包 台灯 课本 毛毯 收音机 "
              "钢笔 相机 冰箱 足球 手套 地图 文具")
FOODS = words("饺子 面条 米饭 包子 馄饨 豆腐 炒青菜 红烧鱼 鸡蛋汤 烤鸭 "
              "月饼 汤圆 煎饼 米粉 火锅 小笼包")
SOUPS = words("面条 馄饨 鸡蛋汤 汤圆 米粉 豆腐汤")
ANIMALS = words("小猫 小狗 兔子 松鼠 麻雀 鸽子 乌龟 金鱼 小鸭 蝴蝶 燕子 山羊")
WEATHER = words("晴朗 阴沉 闷热 凉爽 寒冷 潮湿 干燥 温暖")
RAINS = words("小雨 大雨 阵雨 雷阵雨 小雪 大雪 大风 浓雾")
COLORS = words("红 黄 金黄 橙 绿 深红")
SEASONS = words("春天 夏天 秋天 冬天")
SUBJECTS = words("数学 语文 英语 物理 化学 历史 地理 音乐 美术")
HOBBIES = words("钓鱼 爬山 下棋 画画 跑步 游泳 唱歌 弹琴 写字 养花 "
                "拍照 跳舞 打篮球 踢足球 看书")
RELATIVES = words("爷爷 奶奶 外公 外婆 爸爸 妈妈 哥哥 姐姐 弟弟 妹妹 "
                  "舅舅 姑姑 叔叔 阿姨")
SHOPS = words("面包店 花店 书店 水果店 理发店 小吃店 文具店 茶馆 咖啡馆")
TOPICS = words("星空 海洋 森林 古代建筑 植物 天气 机器人 恐龙 茶文化 "
               "城市交通 节约用水 鸟类迁徙")
SKILLS = words("开车 做饭 游泳 修电脑 剪纸 拍视频 种菜 做木工")
ADJS = words("美丽 热闹 安静 干净 凉快 迷人 漂亮")

CN_DIGITS = "零一二三四五六七八九"


def cn_num(n):
    """1 <= n <= 99 in Chinese numerals."""
    tens, ones = divmod(n, 10)
    s = "" if tens == 0 else ("十" if tens == 1 else CN_DIGITS[tens] + "十")
    return s + (CN_DIGITS[ones] if ones else "")


# Fillers: slot name -> function of the Random giving the slot's text.
# None of them produce a PER, LOC or ORG.
FILLERS = {
    "time": lambda r: r.choice(TIMES) if r.random() < 0.8 else
        "%d月%d日" % (r.randint(1, 12), r.randint(1, 28)),
    "later": lambda r: r.choice(LATER),
    "year": lambda r: "%d年" % r.randint(1998, 2024),
    "num": lambda r: cn_num(r.randint(2, 30)),
    "digits": lambda r: str(r.randint(2, 950)),
    "job": lambda r: r.choice(JOBS),
    "event": lambda r: r.choice(EVENTS),
    "fac": lambda r: r.choice(FACILITIES),
    "crop": lambda r: r.choice(CROPS),
    "goods": lambda r: r.choice(GOODS),
    "food": lambda r: r.choice(FOODS),
    "soup": lambda r: r.choice(SOUPS),
    "animal": lambda r: r.choice(ANIMALS),
    "weather": lambda r: r.choice(WEATHER),
    "rain": lambda r: r.choice(RAINS),
    "color": lambda r: r.choice(COLORS),
    "season": lambda r: r.choice(SEASONS),
    "subject": lambda r: r.choice(SUBJECTS),
    "hobby": lambda r: r.choice(HOBBIES),
    "rel": lambda r: r.choice(RELATIVES),
    "shop": lambda r: r.choice(SHOPS),
    "topic": lambda r: r.choice(TOPICS),
    "skill": lambda r: r.choice(SKILLS),
    "adj": lambda r: r.choice(ADJS),
}

# Sentences with entity slots: P1 P2 (PER), L1 L2 (LOC), O1 O2 (ORG).
NER_TEMPLATES = [
    "{time}，{P1}在{L1}参加了{O1}举办的{event}。",
    "{P1}是{O1}的{job}，已经在那里工作了{num}年。",
    "{O1}宣布将在{L1}新建一座{fac}。",
    "{P1}和{P2}{time}一起去了{L1}。",
    "据{O1}介绍，{L1}今年的{crop}产量比去年增加了百分之{num}。",
    "{time}{P1}到{L1}看望了多年不见的老朋友。",
    "{L1}的居民正在为{event}做最后的准备。",
    "{O1}的{job}{P1}获得了今年的优秀员工称号。",
    "{P1}毕业于{O1}，现在住在{L1}。",
    "{time}，{O1}向{L1}捐赠了一批{goods}。",
    "{P1}的女儿在{O1}读书，成绩一直很好。",
    "{L1}和{L2}之间新开通了一条公交线路。",
    "{P1}对记者说，{O1}明年会招收更多的{job}。",
    "{time}，{L1}下了一场{rain}，{O1}提醒市民注意安全。",
    "{P1}打算明年夏天带家人去{L1}旅行。",
    "这本书的作者是{P1}，由{O1}出版。",
    "{O1}在{L1}设立了新的办事处。",
    "{P1}一直梦想去{L1}看看。",
    "{P1}向{P2}请教了种{crop}的方法。",
    "来自{L1}的{P1}在{event}中获得了第{num}名。",
    "{O1}和{O2}签署了合作协议。",
    "{P1}每天早上在{L1}的河边跑步。",
    "{time}，{P1}当选为{O1}的负责人。",
    "{P1}从{L1}寄来了一箱{crop}。",
    "{O1}的{digits}名员工参加了{event}。",
    "{P1}在{O1}工作了{num}年后回到了{L1}。",
    "{L1}的{fac}由{O1}负责管理。",
    "{P1}和{P2}是在{O1}认识的。",
    "{year}，{P1}离开{L1}，到{L2}开了一家{shop}。",
    "{O1}派出{num}名{job}前往{L1}支援。",
    "听说{P1}下个月要调到{O1}工作。",
    "{P1}在{L1}拍了很多照片。",
    "{time}，{O1}在{L1}举行了{event}。",
    "{P1}给{P2}带来了{L1}的特产。",
    "{L1}是{P1}出生的地方。",
    "{O1}邀请{P1}来讲关于{topic}的课。",
    "{P1}{time}刚从外地出差回来。",
    "{L1}的{crop}远近闻名。",
    "{O1}{later}将举办一场{event}。",
    "我在{L1}住了{num}年。",
    "{P1}最大的爱好是{hobby}。",
    "{time}，{O1}发布了新的招聘计划。",
    "很多游客{time}来到{L1}看风景。",
    "{P1}是一名很受欢迎的{job}。",
    "{O1}今年的收入比去年多了一倍。",
    "{L1}{time}下了一场{rain}。",
]

# Sentences with no entity (about 30% of NER records).
PLAIN_TEMPLATES = [
    "{time}的天气很{weather}，出门的人比平时多。",
    "这家店的{goods}卖得很好，很多人专门来买。",
    "{time}我们一起去看了一场电影。",
    "孩子们在操场上玩得很开心。",
    "他把{goods}放在桌子上就出门了。",
    "这个问题需要大家一起想办法解决。",
    "{time}，小区里的{fac}终于修好了。",
    "妈妈说{crop}要趁新鲜吃。",
    "会议将在{later}召开，请各位准时参加。",
    "今年的{event}比往年更热闹。",
    "她在{fac}门口等了半个小时。",
    "我们的{job}明天要去外地出差。",
    "下雨天路滑，开车要小心。",
    "老师让同学们在周五之前交{subject}作业。",
    "这座{fac}每天接待{digits}多名访客。",
    "经过{num}个月的努力，项目终于完成了。",
    "{rel}每天早上都要喝一杯热茶。",
    "我最喜欢的运动是{hobby}。",
    "{time}下了一场{rain}，街上的人很少。",
    "这道{food}做起来并不难。",
    "院子里有一只{animal}在晒太阳。",
    "他们在{shop}里聊了一个下午。",
    "{season}的时候，山上的树叶变成了{color}色。",
    "这次考试的{subject}题目有点难。",
    "{rel}送给我一个新的{goods}。",
    "请把垃圾分类后再扔进垃圾桶。",
    "大家都觉得这个办法很好。",
    "{time}，我学会了{skill}。",
]

# Everyday sentences for the pre-training corpus (no labels needed).
STORY_TEMPLATES = [
    "{P1}从小就喜欢{hobby}，每个周末都会去{L1}。",
    "{food}是{L1}人最爱吃的家常菜。",
    "{time}，{P1}在公园里遇见了一只{animal}。",
    "天气预报说{later}会有{rain}。",
    "{P1}的{rel}做的{food}特别好吃。",
    "学校门口新开了一家{shop}，生意很好。",
    "{P1}觉得学习{subject}最重要的是多练习。",
    "火车从{L1}开到{L2}要{num}个小时。",
    "{O1}的工作人员每天都很忙。",
    "{P1}把自己的{goods}借给了同学。",
    "{season}到了，{L1}的树叶都变成了{color}色。",
    "{P1}在{O1}学会了{skill}。",
    "{rel}种的{crop}今年长得特别好。",
    "{P1}写了一封信寄给远在{L1}的{rel}。",
    "晚饭以后，{P1}和{rel}一起去散步。",
    "{P1}问{P2}：“你明天去不去{L1}？”",
    "{P2}回答说：“我要先把{subject}作业写完。”",
    "{L1}的{season}很{adj}，游客也很多。",
    "{O1}每年都会组织员工去{L1}参观学习。",
    "{P1}在{shop}买了{num}斤{crop}。",
    "{animal}在院子里跑来跑去。",
    "图书馆里很安静，大家都在认真看书。",
    "{P1}最近在读一本关于{topic}的书。",
    "新修的公路让{L1}到{L2}的路程缩短了一半。",
    "{P1}每天骑自行车去{O1}上班。",
    "这场{event}吸引了很多市民参加。",
    "{P1}的梦想是成为一名{job}。",
    "雨停了，天边出现了一道彩虹。",
    "{L1}的夜市有很多好吃的{food}。",
    "{P1}说，{L1}的{food}和{L2}的不太一样。",
    "{time}，{P1}第一次去{O1}面试，心里有点紧张。",
    "桌上放着一碗刚煮好的{soup}。",
    "{P1}的房间里摆满了关于{topic}的书。",
    "这个{season}，{P1}一共读了{num}本书。",
    "{P1}一边听音乐一边{hobby}。",
    "{L1}离{L2}不远，坐车一个小时就到了。",
    "{P1}告诉{P2}，{O1}正在招{job}。",
    "{time}{P1}感冒了，在家休息了{num}天。",
    "河边的柳树发出了新芽。",
    "{P1}用{digits}元买了一个{goods}。",
]

KIND = {"P": "PER", "L": "LOC", "O": "ORG"}


# ---- Entity generators ----

def gen_person(r):
    given = r.choice(GIVEN)
    if r.random() < 0.6:
        given += r.choice(GIVEN)
    return r.choice(SURNAMES) + given


def gen_place(r):
    x = r.random()
    if x < 0.30:
        return r.choice(CITIES)
    if x < 0.40:
        return r.choice(COUNTRIES)
    if x < 0.50:
        return r.choice(NATURE)
    return r.choice(PLACE_HEAD) + r.choice(PLACE_TAIL)


def gen_org(r):
    x = r.random()
    if x < 0.08:
        return r.choice(ORG_WHOLE)
    head = r.choice(CITIES) if x < 0.35 else r.choice(ORG_HEAD)
    return head + r.choice(ORG_TAIL)


GEN = {"PER": gen_person, "LOC": gen_place, "ORG": gen_org}


def fresh(r, kind, avoid):
    """A new entity of kind not in the set avoid."""
    for _ in range(10000):
        e = GEN[kind](r)
        if e not in avoid:
            return e
    raise SystemExit("gen-data: ran out of new %s entities" % kind)


class Entities:
    """Where a sentence's entities come from.

    mode "any": freshly generated each time (pre-training text).
    mode "train": drawn from fixed pools, so each recurs a few times.
    mode "test": half from the entities training used, half new ones."""

    def __init__(self, r, mode, pool_sizes=None, seen=None):
        self.r, self.mode, self.seen = r, mode, seen
        self.pools = {}
        if mode == "train":
            for kind, n in pool_sizes.items():
                pool = []
                while len(pool) < n:
                    e = GEN[kind](r)
                    if e not in pool:
                        pool.append(e)
                self.pools[kind] = pool

    def get(self, kind, taken):
        r = self.r
        for _ in range(1000):
            if self.mode == "train":
                e = r.choice(self.pools[kind])
            elif self.mode == "test" and r.random() < 0.5:
                e = r.choice(self.seen[kind])
            elif self.mode == "test":
                e = fresh(r, kind, set(self.seen[kind]))
            else:
                e = GEN[kind](r)
            if e not in taken:
                return e
        raise SystemExit("gen-data: no distinct %s entity" % kind)


# ---- Rendering ----

def render(r, template, ents, bound=None):
    """Fill template; return (text, entity_list).

    Entity slots (P1, L2, ...) take a distinct entity from ents unless
    bound (slot -> text, for documents that keep their people) has one;
    other slots take a filler. Offsets count code points."""
    bound = {} if bound is None else bound
    text, found = "", []
    for lit, field, _, _ in string.Formatter().parse(template):
        text += lit
        if field is None:
            continue
        kind = KIND.get(field[0])
        if kind is None:
            text += FILLERS[field](r)
            continue
        if field not in bound:
            bound[field] = ents.get(kind, set(bound.values()))
        e = bound[field]
        found.append({"entity": e, "entity_type": kind,
            "entity_index": {"begin": len(text), "end": len(text) + len(e)}})
        text += e
    return text, found


def ner_record(r, ents, plain):
    t = r.choice(PLAIN_TEMPLATES if plain else NER_TEMPLATES)
    text, found = render(r, t, ents)
    return {"text": text, "entity_list": found}


def ner_set(r, ents, n, avoid_texts):
    """n records, a NONE_SHARE of them without entities, distinct texts."""
    n_plain = round(n * NONE_SHARE)
    plain = [True] * n_plain + [False] * (n - n_plain)
    r.shuffle(plain)
    recs, texts = [], set(avoid_texts)
    for p in plain:
        for _ in range(1000):
            rec = ner_record(r, ents, p)
            if rec["text"] not in texts:
                break
        else:
            raise SystemExit("gen-data: cannot make a new NER text")
        texts.add(rec["text"])
        recs.append(rec)
    return recs


def zh_doc(r, ents):
    """One document: 1 to 3 sentences about the same people and places."""
    bound = {}
    sents = []
    for _ in range(r.choice([1, 2, 2, 3])):
        x = r.random()
        pool = (STORY_TEMPLATES if x < 0.6 else
            NER_TEMPLATES if x < 0.85 else PLAIN_TEMPLATES)
        sents.append(render(r, r.choice(pool), ents, bound)[0])
    return "".join(sents)


# ---- Output ----

def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def jsonl(rec):
    return json.dumps(rec, ensure_ascii=False)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "testdata", "demo"),
        help="output directory (default: testdata/demo)")
    ap.add_argument("--no-model", action="store_true",
        help="do not train base.model with spm_train")
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)

    r = random.Random(601)
    write_lines(os.path.join(out, "base-corpus.txt"),
        [en_line(r) for _ in range(N_BASE_LINES)])

    r = random.Random(602)
    ents = Entities(r, "any")
    write_lines(os.path.join(out, "zh-corpus.txt"),
        [zh_doc(r, ents) for _ in range(N_ZH_DOCS)])

    r = random.Random(603)
    train_ents = Entities(r, "train", {"PER": 220, "LOC": 110, "ORG": 110})
    train = ner_set(r, train_ents, N_NER_TRAIN, ())
    seen = {k: [] for k in KIND.values()}
    for rec in train:
        for e in rec["entity_list"]:
            if e["entity"] not in seen[e["entity_type"]]:
                seen[e["entity_type"]].append(e["entity"])
    test_ents = Entities(r, "test", seen=seen)
    test = ner_set(r, test_ents, N_NER_TEST, [x["text"] for x in train])
    write_lines(os.path.join(out, "ner-train.jsonl"), map(jsonl, train))
    write_lines(os.path.join(out, "ner-test.jsonl"), map(jsonl, test))

    if args.no_model:
        return
    cmd = ["spm_train"] + SPM_BASE_ARGS
    print("gen-data: (cd %s && %s)" % (out, " ".join(cmd)), file=sys.stderr)
    subprocess.run(cmd, cwd=out, check=True, stdout=subprocess.DEVNULL)
    os.remove(os.path.join(out, "base.vocab"))


if __name__ == "__main__":
    main()
