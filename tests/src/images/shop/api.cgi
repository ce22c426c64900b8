#!/bin/sh
# The shop's API: its own price list, joined with the counts the stock job serves by name.
printf 'Content-Type: text/plain\r\n\r\n'
if ! stock=$(wget -q -O - http://stock:9100/stock.txt 2>&1); then
    echo "the stock job did not answer: $stock"
    exit 0
fi
echo "catalogue (api on $(hostname), stock from the stock job):"
while read -r item price; do
    count=$(echo "$stock" | grep "^$item " | cut -d ' ' -f 2)
    echo "  $item  $price USDC  ${count:-0} in stock"
done < /srv/prices.txt
