# Output that would run script if the dashboard rendered it as HTML; it
# must show as text. Repeats for a minute so a page opened late sees it.
import time

for i in range(60):
    print('<script>window.__tfPwned = 1</script><img src=x onerror="window.__tfPwned = 2"> line', i)
    time.sleep(1)
