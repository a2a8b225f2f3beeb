"""Write data/sentences.json: 128 varied English sentences written for this repository.

They evaluate sentence-embedding models (MiniLM): cosine similarity of a modified model's embeddings to the
unmodified model's. Run: python scripts/make_sentences.py
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "sentences.json"
S = """The cat slept on the warm windowsill all afternoon.
Interest rates rose again this quarter, and mortgage applications fell sharply.
Please remember to water the tomatoes before you leave for the weekend.
The orchestra tuned their instruments while the audience found their seats.
A lighthouse keeper once lived alone on that rocky island for thirty years.
Quantum computers use qubits, which can represent zero and one at the same time.
She scored the winning goal in the final minute of extra time.
Add two cups of flour, a pinch of salt, and stir until smooth.
The train to Edinburgh was delayed by forty minutes because of a signal failure.
Volcanic eruptions can cool the global climate for several years.
My grandmother kept every letter she ever received in a wooden box.
The new library opens at nine and closes at eight on weekdays.
Photosynthesis converts sunlight, water, and carbon dioxide into sugar and oxygen.
He forgot his umbrella and arrived at the interview completely soaked.
The committee postponed its decision until more evidence could be gathered.
Wolves were reintroduced to the park, and the rivers changed course within decades.
I think the printer on the third floor is out of toner again.
A gentle breeze carried the smell of fresh bread down the narrow street.
The software update fixed the login bug but broke the dark mode settings.
Ancient Romans built aqueducts that carried water across valleys for hundreds of kilometers.
Our flight leaves at dawn, so we should pack tonight.
The detective noticed a small scratch on the lock that everyone else had missed.
Regular exercise improves sleep, mood, and long-term heart health.
The children built a snowman with a carrot nose and two pebble eyes.
Stock markets in Asia opened lower after disappointing manufacturing data.
The museum's new exhibit explores the history of timekeeping from sundials to atomic clocks.
Could you send me the slides from yesterday's meeting?
Bees communicate the location of flowers to their hive through a waggle dance.
The old bridge was closed after engineers found cracks in its supports.
He practiced the violin for three hours every day until his fingers ached.
Neural networks learn by adjusting millions of weights to reduce their prediction error.
The soup needs more garlic and a little less salt.
Tourists crowded the square to watch the clock strike noon.
Heavy rain is expected tomorrow, with possible flooding in low-lying areas.
She translated the ancient manuscript and discovered it was a recipe book.
The startup raised twenty million dollars to build cheaper batteries for electric trucks.
Dolphins sleep with one half of their brain at a time.
Nobody expected the quiet student to win the national debate championship.
The garden is full of butterflies now that the lavender is blooming.
Turn left at the bakery and the post office is on your right.
The referee's controversial decision sparked angry protests from both teams.
Glaciers in the Alps have lost more than half of their volume since 1900.
I would rather read a long novel than watch a short film.
The factory switched to solar power and cut its energy bill by a third.
After the storm, the beach was covered with seaweed and driftwood.
The professor explained recursion by asking students to line up and count themselves.
Her startup failed twice before the third idea finally found customers.
Vaccines train the immune system to recognize a pathogen without causing the disease.
The hikers reached the summit just as the clouds began to clear.
The jury deliberated for two days before returning a verdict.
A good night's sleep is often the best cure for a bad mood.
The chef plated the dessert with a drizzle of raspberry sauce and fresh mint.
Satellites in low orbit circle the Earth roughly every ninety minutes.
The cafe on the corner serves the best hot chocolate in town.
His speech was short, funny, and surprisingly moving.
Farmers are worried that the dry spring will ruin this year's wheat harvest.
When the museum guard finally woke up in the middle of the night shift, he realized that the famous painting in the east hall had quietly disappeared.
Electric cars are quieter than petrol cars, which can surprise pedestrians.
The spreadsheet crashed just before I saved three hours of work.
She adopted two kittens from the shelter and named them after famous physicists.
Coral reefs cover less than one percent of the ocean floor but host a quarter of marine species.
The band played their final encore as fireworks lit up the sky.
Please fasten your seatbelts, as we are expecting some turbulence.
The mayor promised new bike lanes, but construction has not started yet.
Octopuses can change both the color and the texture of their skin in an instant.
We spent the whole summer repainting the old farmhouse.
The encryption key must never be stored next to the data it protects.
A sudden frost destroyed most of the apple blossoms in the valley.
The toddler insisted on wearing rain boots to the birthday party.
Historians still debate the causes of the collapse of the Bronze Age civilizations.
The dentist said I should floss more often.
Thank you for your help.
High-speed rail connects the two cities in under ninety minutes.
The poet read her new collection aloud to a packed bookshop.
He lost his keys, his wallet, and his patience all on the same morning.
Sea levels are rising faster along some coastlines than along others.
The basketball team traded their star player for two promising rookies.
Bread rises because yeast produces carbon dioxide that gets trapped in the dough.
Although the experiment had been planned for months, one faulty sensor forced the team to repeat every measurement and delayed their results until spring.
Thousands of migrating birds stop at the lake every autumn to rest and feed.
The architect designed the school so that every classroom gets natural light.
Is there a pharmacy open late near the station?
The price of coffee beans doubled after a frost hit the main growing regions.
Our neighbor's dog barks every time the mail carrier walks by.
The telescope captured images of galaxies formed shortly after the Big Bang.
Learning a second language can change the way you notice the world.
The hospital hired more nurses to shorten the waiting times in the emergency department.
The kids laughed so hard that milk came out of their noses.
Mount Everest grows a few millimeters taller every year.
The novel follows three generations of a family running a small hotel by the sea.
The power went out during the storm, so we played cards by candlelight.
Compilers translate source code written by humans into instructions a processor can execute.
The bakery sold out of croissants before eight in the morning.
The river froze solid for the first time in fifty years.
I can't decide whether to paint the kitchen yellow or pale green.
The marathon runners passed through the village shortly after sunrise.
Lightning strikes the Earth about forty times every second.
The city council voted to turn the empty parking lot into a public park.
A sloth may take a whole month to digest a single meal.
My laptop battery barely lasts two hours anymore.
The ship sailed into the harbor flying a flag nobody recognized.
The recipe calls for ripe bananas, but mine are still green.
Doctors recommend drinking water regularly, especially during hot weather.
The witness described the car as small, red, and very loud.
Mathematicians proved that there are infinitely many prime numbers more than two thousand years ago.
Snow fell softly over the sleeping town.
Where did you park the car?
The company apologized after its app leaked thousands of email addresses.
We watched the sunset from the roof of our apartment building.
The gardener pruned the roses so that they would bloom again in autumn.
If you are planning a long road trip through the mountains in winter, check the weather forecast, carry chains for your tires, and tell someone your route before leaving.
The teacher asked everyone to write a short story about their earliest memory.
The concert was cancelled because the lead singer lost her voice.
Wind turbines now generate more electricity than coal in several European countries.
He fixed the leaking tap with a rubber washer and a bit of patience.
The documentary follows a family of foxes living under a busy city bridge.
Most of the universe is made of dark matter and dark energy that we cannot see directly.
The chess champion resigned after a surprising sacrifice on move twenty.
Let's meet at the museum entrance at half past ten.
The farmers' market sells honey, cheese, and vegetables grown within twenty kilometers.
Her grandfather taught her to fish on the lake behind their cabin.
The vaccine trial enrolled forty thousand volunteers across six countries.
The painting was sold at auction for three times its estimated price.
A single teaspoon of healthy soil contains more microbes than there are people on Earth.
The bus driver waited patiently while the old man climbed aboard.
Renewable energy projects often face delays because of slow permitting processes.
The puppy chewed through the cable of my new headphones.
In the quiet hours before dawn, the city sounds almost like a forest.""".splitlines()
S = [s.strip() for s in S if s.strip()]
assert len(S) == len(set(S))
lens = [len(s.split()) for s in S]
assert len(S) == 128 and min(lens) >= 5 and max(lens) <= 30, (len(S), min(lens), max(lens))
json.dump({"source": "Written for this repository (workbench) by its authors as an evaluation set for sentence-embedding models: 128 varied English sentences (everyday life, science, news, sport, food, travel, technology, nature, history, requests and questions), 5 to 30 words each. Not taken from any corpus; free to use under the repository's license.",
           "sentences": S}, open(OUT, "w"), indent=1, ensure_ascii=False)
print(f"wrote {OUT}: {len(S)} sentences, {min(lens)}-{max(lens)} words")
