//! R1, test USDC, the swap pool and Node Deed licences, including PoA minting.
#![allow(clippy::unwrap_used)] // test bodies run inside closures, where the usual test exemption does not reach

mod common;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use common::{EPOCH, World, actor, link_proof, random_address, raw_revert_of, revert_of, run};
use r1_contracts::bindings::{NodeDeed, PoAIManager, R1, R1UsdcPool, TestUSDC};
use r1_contracts::{AVAILABILITY_PAGE_ROWS, AvailabilityTable, LinkProof, PagesRecorded, Suite};

type E = NodeDeed::NodeDeedErrors;
use r1_contracts::tx::confirm;
use r1_contracts::units::{r1_units, usdc_units};

#[test]
fn r1_mints_only_for_minters_and_never_beyond_the_cap() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let stranger = actor(&w).await;
        let err = revert_of::<_, R1::R1Errors>(
            confirm(stranger.r1().mint(stranger.address(), U256::from(1))).await,
        );
        assert!(matches!(err, R1::R1Errors::NotMinter(_)));

        let cap = w.gov.r1().MAX_SUPPLY().call().await.unwrap();
        assert_eq!(cap, r1_units(161_803_398));
        let supply = w.gov.r1().totalSupply().call().await.unwrap();
        confirm(w.gov.r1().setMinter(w.gov.address(), true))
            .await
            .unwrap();
        let err = revert_of::<_, R1::R1Errors>(
            confirm(
                w.gov
                    .r1()
                    .mint(w.gov.address(), cap - supply + U256::from(1)),
            )
            .await,
        );
        assert!(matches!(err, R1::R1Errors::ERC20ExceededCap(_)));
        confirm(w.gov.r1().mint(w.gov.address(), cap - supply))
            .await
            .unwrap();
        assert_eq!(w.gov.r1().totalSupply().call().await.unwrap(), cap);

        confirm(w.gov.r1().burn(r1_units(5))).await.unwrap();
        assert_eq!(
            w.gov.r1().totalSupply().call().await.unwrap(),
            cap - r1_units(5)
        );
        assert_eq!(w.gov.r1().decimals().call().await.unwrap(), 18);

        let err = revert_of::<_, R1::R1Errors>(
            confirm(stranger.r1().setMinter(stranger.address(), true)).await,
        );
        assert!(matches!(err, R1::R1Errors::OwnableUnauthorizedAccount(_)));
    });
}

#[test]
fn test_usdc_has_six_decimals_and_an_owner_only_faucet() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        assert_eq!(w.gov.usdc().decimals().call().await.unwrap(), 6);
        let stranger = actor(&w).await;
        let err = revert_of::<_, TestUSDC::TestUSDCErrors>(
            confirm(stranger.usdc().mint(stranger.address(), U256::from(1))).await,
        );
        assert!(matches!(
            err,
            TestUSDC::TestUSDCErrors::OwnableUnauthorizedAccount(_)
        ));
    });
}

#[test]
fn pool_swaps_at_the_constant_product_price_and_honours_the_minimum() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let trader = actor(&w).await;
        w.gov
            .mint_usdc(trader.address(), usdc_units(100))
            .await
            .unwrap();
        let pool = trader.pool();
        let (ru, rr) = (
            pool.reserveUsdc().call().await.unwrap(),
            pool.reserveR1().call().await.unwrap(),
        );
        let amount = usdc_units(100);
        let expected =
            amount * U256::from(997) * rr / (ru * U256::from(1000) + amount * U256::from(997));
        assert_eq!(pool.quoteUsdcToR1(amount).call().await.unwrap(), expected);
        confirm(trader.usdc().approve(w.gov.deployment().pool, amount))
            .await
            .unwrap();
        let err = revert_of::<_, R1UsdcPool::R1UsdcPoolErrors>(
            confirm(pool.swapUsdcForR1(amount, expected + U256::from(1), trader.address())).await,
        );
        assert!(matches!(
            err,
            R1UsdcPool::R1UsdcPoolErrors::InsufficientOutput(_)
        ));
        confirm(pool.swapUsdcForR1(amount, expected, trader.address()))
            .await
            .unwrap();
        assert_eq!(w.r1_balance(trader.address()).await, expected);
        assert_eq!(pool.reserveUsdc().call().await.unwrap(), ru + amount);

        let err = revert_of::<_, R1UsdcPool::R1UsdcPoolErrors>(
            confirm(trader.pool().addLiquidity(U256::from(1), U256::from(1))).await,
        );
        assert!(matches!(
            err,
            R1UsdcPool::R1UsdcPoolErrors::OwnableUnauthorizedAccount(_)
        ));
    });
}

#[test]
fn licence_sale_burns_20_sends_50_to_liquidity_and_30_to_operations() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let deed = w.owner.node_deed();
        let price = deed.currentPrice().call().await.unwrap();
        assert_eq!(price, r1_units(100));
        let supply = w.gov.r1().totalSupply().call().await.unwrap();
        let buyer_before = w.r1_balance(w.owner.address()).await;
        let licence = w.owner.buy_licence().await.unwrap();
        assert_eq!(licence, 1);
        assert_eq!(
            deed.ownerOf(U256::from(1)).call().await.unwrap(),
            w.owner.address()
        );
        assert_eq!(w.r1_balance(w.owner.address()).await, buyer_before - price);
        assert_eq!(
            w.gov.r1().totalSupply().call().await.unwrap(),
            supply - r1_units(20)
        );
        assert_eq!(w.r1_balance(Address::repeat_byte(0x11)).await, r1_units(50));
        assert_eq!(w.r1_balance(Address::repeat_byte(0x22)).await, r1_units(30));

        let err = raw_revert_of::<_, NodeDeed::NodeDeedErrors>(
            deed.buyLicence(price - U256::from(1)).call().await,
        );
        assert!(matches!(err, NodeDeed::NodeDeedErrors::PriceAboveLimit(_)));
    });
}

#[test]
fn licence_price_follows_the_tiers_until_sold_out() {
    run(|chain| async move {
        let (address, provider) = chain.funded_account(1_000).await.unwrap();
        let r1 = R1::deploy_builder(provider.clone(), address)
            .deploy()
            .await
            .unwrap();
        let deed = NodeDeed::deploy(
            provider.clone(),
            r1,
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            address,
            vec![r1_units(10), r1_units(30)],
            vec![U256::from(1), U256::from(2)],
            U256::from(86_400),
        )
        .await
        .unwrap();
        let token = R1::new(r1, provider.clone());
        confirm(token.setMinter(address, true)).await.unwrap();
        confirm(token.mint(address, r1_units(100))).await.unwrap();
        confirm(token.approve(*deed.address(), r1_units(100)))
            .await
            .unwrap();
        assert_eq!(deed.currentPrice().call().await.unwrap(), r1_units(10));
        confirm(deed.buyLicence(r1_units(10))).await.unwrap();
        assert_eq!(deed.currentPrice().call().await.unwrap(), r1_units(30));
        confirm(deed.buyLicence(r1_units(30))).await.unwrap();
        let err = raw_revert_of::<_, NodeDeed::NodeDeedErrors>(
            deed.buyLicence(r1_units(100)).call().await,
        );
        assert!(matches!(err, NodeDeed::NodeDeedErrors::SoldOut(_)));

        let bad = NodeDeed::deploy_builder(
            provider,
            r1,
            address,
            address,
            address,
            vec![r1_units(1)],
            vec![U256::from(50_000)],
            U256::from(86_400),
        )
        .deploy()
        .await;
        let err = raw_revert_of::<_, NodeDeed::NodeDeedErrors>(bad);
        assert!(matches!(err, NodeDeed::NodeDeedErrors::InvalidTiers(_)));
    });
}

#[test]
fn nodes_link_to_one_licence_and_can_be_unlinked_and_relinked() {
    run(|chain| async move {
        let w = World::new(chain, 1, 1).await;
        let deed = w.owner.node_deed();
        let oracle = &w.oracle_keys[0];
        let (node, node_key, licence) = (w.nodes[0], &w.node_keys[0], w.licences[0]);
        assert_eq!(
            deed.licenceOfNode(node).call().await.unwrap(),
            U256::from(licence)
        );
        assert_eq!(
            deed.ownerOfNode(node).call().await.unwrap(),
            w.owner.address()
        );

        let second = w.owner.buy_licence().await.unwrap();
        let proof = link_proof(chain, &w.owner, second, node_key, oracle).await;
        let err = revert_of::<_, E>(w.owner.link_node(second, node, &proof).await);
        assert!(matches!(err, E::NodeAlreadyLinked(_)));
        let other = PrivateKeySigner::random();
        let proof = link_proof(chain, &w.owner, licence, &other, oracle).await;
        let err = revert_of::<_, E>(w.owner.link_node(licence, other.address(), &proof).await);
        assert!(matches!(err, E::LicenceAlreadyLinked(_)));
        let err = revert_of::<_, E>(w.owner.link_node(second, Address::ZERO, &proof).await);
        assert!(matches!(err, E::ZeroNode(_)));

        let stranger = actor(&w).await;
        let proof = link_proof(chain, &stranger, second, &other, oracle).await;
        let err = revert_of::<_, E>(stranger.link_node(second, other.address(), &proof).await);
        assert!(matches!(err, E::NotLicenceOwner(_)));
        let err = revert_of::<_, E>(stranger.unlink_node(licence).await);
        assert!(matches!(err, E::NotLicenceOwner(_)));

        w.owner.unlink_node(licence).await.unwrap();
        assert_eq!(deed.ownerOfNode(node).call().await.unwrap(), Address::ZERO);
        let err = revert_of::<_, E>(w.owner.unlink_node(licence).await);
        assert!(matches!(err, E::LicenceNotLinked(_)));
        let proof = link_proof(chain, &w.owner, second, node_key, oracle).await;
        w.owner.link_node(second, node, &proof).await.unwrap();
        assert_eq!(
            deed.licenceOfNode(node).call().await.unwrap(),
            U256::from(second)
        );
    });
}

#[test]
fn a_link_needs_the_nodes_and_an_oracles_signatures_each_good_once() {
    run(|chain| async move {
        let w = World::new(chain, 1, 0).await;
        let deed = w.owner.node_deed();
        let oracle = &w.oracle_keys[0];
        let licence = w.owner.buy_licence().await.unwrap();
        let node_key = PrivateKeySigner::random();
        let node = node_key.address();
        let deadline = chain.timestamp().await.unwrap() + 600;
        let terms = w.owner.link_terms(licence, node, deadline).await.unwrap();
        assert_eq!(
            terms.digest(),
            deed.linkDigest(
                U256::from(licence),
                w.owner.address(),
                node,
                U256::from(deadline)
            )
            .call()
            .await
            .unwrap(),
            "the digest computed here is the contract's"
        );
        let signed = |node_signer: &PrivateKeySigner, oracle_signer: &PrivateKeySigner| LinkProof {
            deadline,
            node_signature: terms.sign(node_signer).unwrap(),
            oracle_signature: terms.sign(oracle_signer).unwrap(),
        };

        // Another key signing for the node, a non-oracle attesting (the node itself included).
        let impostor = PrivateKeySigner::random();
        let err = revert_of::<_, E>(
            w.owner
                .link_node(licence, node, &signed(&impostor, oracle))
                .await,
        );
        assert!(matches!(err, E::BadNodeSignature(_)));
        let err = revert_of::<_, E>(
            w.owner
                .link_node(licence, node, &signed(&node_key, &impostor))
                .await,
        );
        assert!(matches!(err, E::NotOracleSignature(_)));
        let err = revert_of::<_, E>(
            w.owner
                .link_node(licence, node, &signed(&node_key, &node_key))
                .await,
        );
        assert!(matches!(err, E::NotOracleSignature(_)));
        // Signatures the node gave another owner do not link it here.
        let stranger = actor(&w).await;
        let theirs = stranger.link_terms(licence, node, deadline).await.unwrap();
        let proof = LinkProof {
            deadline,
            node_signature: theirs.sign(&node_key).unwrap(),
            oracle_signature: theirs.sign(oracle).unwrap(),
        };
        let err = revert_of::<_, E>(w.owner.link_node(licence, node, &proof).await);
        assert!(matches!(err, E::BadNodeSignature(_)));
        // Past the deadline.
        let stale_terms = w
            .owner
            .link_terms(licence, node, chain.timestamp().await.unwrap() - 1)
            .await
            .unwrap();
        let stale = LinkProof {
            deadline: stale_terms.deadline,
            node_signature: stale_terms.sign(&node_key).unwrap(),
            oracle_signature: stale_terms.sign(oracle).unwrap(),
        };
        let err = revert_of::<_, E>(w.owner.link_node(licence, node, &stale).await);
        assert!(matches!(err, E::LinkExpired(_)));

        let good = signed(&node_key, oracle);
        let receipt = w.owner.link_node(licence, node, &good).await.unwrap();
        let linked = receipt.decoded_log::<NodeDeed::NodeLinked>().unwrap();
        assert_eq!(linked.data.oracle, oracle.address());
        assert_eq!(deed.linkNonce(node).call().await.unwrap(), U256::from(1));

        // A licence takes a new node only a relink delay (one epoch here) after its last link,
        // and the node's old signatures are spent.
        w.owner.unlink_node(licence).await.unwrap();
        let fresh = link_proof(chain, &w.owner, licence, &node_key, oracle).await;
        let err = revert_of::<_, E>(w.owner.link_node(licence, node, &fresh).await);
        assert!(matches!(err, E::RelinkTooSoon(_)));
        chain.advance_time(EPOCH).await.unwrap();
        let replayed = LinkProof {
            deadline: u64::MAX,
            ..good.clone()
        };
        let err = revert_of::<_, E>(w.owner.link_node(licence, node, &replayed).await);
        assert!(matches!(err, E::BadNodeSignature(_)));
        let fresh = link_proof(chain, &w.owner, licence, &node_key, oracle).await;
        w.owner.link_node(licence, node, &fresh).await.unwrap();
    });
}

#[test]
fn a_node_is_unlinked_only_once_its_earnings_are_claimed() {
    run(|chain| async move {
        let w = World::new(chain, 3, 1).await;
        let (node, licence) = (w.nodes[0], w.licences[0]);
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes).await;
        w.advance_epochs(2).await;
        w.oracles[0].allocate_rewards().await.unwrap();
        let pending = w.owner.pending_rewards(node).await.unwrap();
        assert!(pending > U256::ZERO);
        assert_eq!(pending, w.node_balance(node).await);
        let err = revert_of::<_, E>(w.owner.unlink_node(licence).await);
        assert!(matches!(err, E::UnclaimedRewards(_)));
        w.owner.claim_rewards(&[node], 100).await.unwrap();
        assert_eq!(w.owner.pending_rewards(node).await.unwrap(), U256::ZERO);
        w.owner.unlink_node(licence).await.unwrap();
        // A blacklisted node's earnings cannot be claimed, and do not hold it.
        let w = World::new(chain, 3, 1).await;
        let job = w.create_job(1, 30).await;
        w.agree(job, &w.nodes).await;
        w.advance_epochs(2).await;
        w.oracles[0].allocate_rewards().await.unwrap();
        confirm(w.gov.manager().setBlacklisted(w.nodes[0], true))
            .await
            .unwrap();
        w.owner.unlink_node(w.licences[0]).await.unwrap();
    });
}

#[test]
fn agreed_availability_mints_n_over_t_times_a_over_255_and_never_beyond_n() {
    run(|chain| async move {
        let w = World::new(chain, 3, 3).await;
        let deed = w.gov.node_deed();
        let unlinked = random_address();
        w.next_epoch().await;
        let epoch = w.epoch().await - 1;
        let mut table = vec![
            (w.nodes[0], 255u8),
            (w.nodes[1], 128u8),
            (w.nodes[2], 0u8),
            (unlinked, 255u8),
        ];
        table.sort();
        let before = w.r1_balance(w.owner.address()).await;

        let stranger = actor(&w).await;
        let err = revert_of::<_, PoAIManager::PoAIManagerErrors>(
            stranger.submit_availability(epoch, &table).await,
        );
        assert!(matches!(err, PoAIManager::PoAIManagerErrors::NotOracle(_)));
        let err = revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.oracles[0].submit_availability(epoch + 1, &table).await,
        );
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::EpochNotEnded(_)
        ));
        let err = raw_revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.oracles[0]
                .manager()
                .submitAvailability(U256::from(epoch), B256::ZERO, U256::from(4u64))
                .call()
                .await,
        );
        assert!(matches!(err, PoAIManager::PoAIManagerErrors::EmptyPage(_)));

        let pages = AvailabilityTable::new(epoch, table.iter().copied());
        let (nodes, bytes) = pages.page(0);
        let record = |oracle: &Suite, nodes: Vec<Address>, bytes: Vec<u8>| {
            let manager = oracle.manager();
            async move {
                let call = manager.recordAvailabilityPage(
                    U256::from(epoch),
                    U256::ZERO,
                    nodes,
                    bytes,
                    vec![],
                );
                raw_revert_of::<_, PoAIManager::PoAIManagerErrors>(call.call().await)
            }
        };
        let err = record(&w.oracles[0], nodes.to_vec(), bytes.to_vec()).await;
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::AvailabilityNotAgreed(_)
        ));

        w.oracles[0]
            .submit_availability(epoch, &table)
            .await
            .unwrap();
        let err = revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.oracles[0].submit_availability(epoch, &table).await,
        );
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::AlreadyVoted(_)
        ));
        w.oracles[1]
            .submit_availability(epoch, &table)
            .await
            .unwrap();
        assert!(w.gov.availability_agreed(epoch).await.unwrap());
        // Agreed is not yet paid: the page is recorded next.
        assert_eq!(w.r1_balance(w.owner.address()).await, before);
        assert!(!w.gov.availability_recorded(epoch).await.unwrap());

        // A page that is not the agreed one's is refused: a byte changed, a row dropped, rows
        // out of order. (The rows' order follows the nodes' random addresses, so the byte is
        // flipped, never set to a value it may already hold.)
        let mut changed = bytes.to_vec();
        changed[2] ^= 1;
        let err = record(&w.oracles[2], nodes.to_vec(), changed).await;
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::PageNotInTable(_)
        ));
        let err = record(&w.oracles[2], nodes[1..].to_vec(), bytes[1..].to_vec()).await;
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::LengthMismatch(_)
        ));
        let mut swapped = nodes.to_vec();
        swapped.swap(0, 1);
        let err = record(&w.oracles[2], swapped, bytes.to_vec()).await;
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::NodesNotSorted(_)
        ));
        let err = record(&stranger, nodes.to_vec(), bytes.to_vec()).await;
        assert!(matches!(err, PoAIManager::PoAIManagerErrors::NotOracle(_)));

        w.oracles[2]
            .record_availability_pages(&pages, 0, 1)
            .await
            .unwrap();
        assert!(w.gov.availability_recorded(epoch).await.unwrap());
        let err = record(&w.oracles[0], nodes.to_vec(), bytes.to_vec()).await;
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::PageAlreadyRecorded(_)
        ));

        let n = U256::from(157_519u64) * U256::from(10u64).pow(U256::from(16u64));
        let reward = |a: u64| n * U256::from(a) / U256::from(1080u64 * 255);
        assert_eq!(
            w.r1_balance(w.owner.address()).await,
            before + reward(255) + reward(128)
        );
        assert_eq!(
            deed.poaMinted(U256::from(w.licences[1]))
                .call()
                .await
                .unwrap(),
            reward(128)
        );
        let err = revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.oracles[2].submit_availability(epoch, &table).await,
        );
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::AvailabilityAlreadyAgreed(_)
        ));

        // Only the manager records availability.
        let err = raw_revert_of::<_, NodeDeed::NodeDeedErrors>(
            deed.recordAvailability(U256::from(epoch + 1), vec![], vec![])
                .call()
                .await,
        );
        assert!(matches!(err, NodeDeed::NodeDeedErrors::NotManager(_)));
        assert_eq!(deed.poaRewardFor(255).call().await.unwrap(), reward(255));
        assert_eq!(deed.MAX_POA_PER_LICENCE().call().await.unwrap(), n);
    });
}

#[test]
fn poa_stops_at_n_per_licence_and_skips_blacklisted_nodes() {
    run(|chain| async move {
        let w = World::new(chain, 1, 2).await;
        let deed = w.gov.node_deed();
        confirm(w.gov.manager().setBlacklisted(w.nodes[1], true))
            .await
            .unwrap();
        let n = deed.MAX_POA_PER_LICENCE().call().await.unwrap();
        let per_epoch = deed.poaRewardFor(255).call().await.unwrap();
        assert!(per_epoch * U256::from(1_080u64) <= n && per_epoch * U256::from(1_081u64) > n);

        // Put licence 0 half an epoch's reward short of N (poaMinted is storage slot 15, after
        // ERC721's, Ownable's and EIP712's variables and the manager and tier table), as if
        // it had mined for ~1,080 epochs.
        let licence = U256::from(w.licences[0]);
        let slot = keccak256((licence, U256::from(15u64)).abi_encode());
        let almost = n - per_epoch / U256::from(2u64);
        let value = B256::from(almost);
        let _: bool = chain
            .rpc()
            .raw_request("hardhat_setStorageAt".into(), (deed.address(), slot, value))
            .await
            .unwrap();
        assert_eq!(deed.poaMinted(licence).call().await.unwrap(), almost);

        w.advance_epochs(3).await;
        let table = [(w.nodes[0], 255u8), (w.nodes[1], 255u8)];
        let before = w.r1_balance(w.owner.address()).await;
        w.agree_availability(0, &table).await;
        assert_eq!(deed.poaMinted(licence).call().await.unwrap(), n);
        assert_eq!(w.r1_balance(w.owner.address()).await, before + (n - almost));
        w.agree_availability(1, &table).await;
        assert_eq!(deed.poaMinted(licence).call().await.unwrap(), n);
        assert_eq!(w.r1_balance(w.owner.address()).await, before + (n - almost));
        // The blacklisted node's licence never mined.
        assert_eq!(
            deed.poaMinted(U256::from(w.licences[1]))
                .call()
                .await
                .unwrap(),
            U256::ZERO
        );
    });
}

#[test]
fn a_table_of_many_pages_is_recorded_page_by_page_in_any_order_and_each_once() {
    run(|chain| async move {
        let w = World::new(chain, 1, 3).await;
        let deed = w.gov.node_deed();
        assert_eq!(
            w.gov
                .manager()
                .AVAILABILITY_PAGE_ROWS()
                .call()
                .await
                .unwrap(),
            U256::from(AVAILABILITY_PAGE_ROWS)
        );
        w.next_epoch().await;
        let epoch = w.epoch().await - 1;
        // Two and a half pages: the three linked nodes among unlinked ones, which earn nothing.
        let mut rows: Vec<(Address, u8)> = (0..AVAILABILITY_PAGE_ROWS * 5 / 2)
            .map(|_| (random_address(), 255u8))
            .collect();
        rows.extend(w.nodes.iter().map(|n| (*n, 200u8)));
        let table = AvailabilityTable::new(epoch, rows.iter().copied());
        assert_eq!(table.pages(), 3);
        w.oracles[0]
            .submit_availability(epoch, &rows)
            .await
            .unwrap();
        assert!(w.gov.availability_agreed(epoch).await.unwrap());

        let before = w.r1_balance(w.owner.address()).await;
        // Page 2 first, then page 0: each call takes the first missing page from its start.
        for (from, left) in [(2, 2), (0, 1)] {
            let recorded = w.oracles[0]
                .record_availability_pages(&table, from, 1)
                .await
                .unwrap();
            assert_eq!(recorded, PagesRecorded::Recorded { sent: 1, left });
        }
        assert!(!w.gov.availability_recorded(epoch).await.unwrap());
        let err = raw_revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.oracles[0]
                .manager()
                .recordAvailabilityPage(U256::from(epoch), U256::from(3u64), vec![], vec![], vec![])
                .call()
                .await,
        );
        assert!(matches!(err, PoAIManager::PoAIManagerErrors::NoSuchPage(_)));
        // Page 0's rows offered as page 1, with page 1's proof: refused.
        let (nodes, bytes) = table.page(0);
        let err = raw_revert_of::<_, PoAIManager::PoAIManagerErrors>(
            w.oracles[0]
                .manager()
                .recordAvailabilityPage(
                    U256::from(epoch),
                    U256::from(1u64),
                    nodes.to_vec(),
                    bytes.to_vec(),
                    table.proof(1),
                )
                .call()
                .await,
        );
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::PageNotInTable(_)
        ));
        let last = w.oracles[0]
            .record_availability_pages(&table, 0, usize::MAX)
            .await
            .unwrap();
        assert_eq!(last, PagesRecorded::Recorded { sent: 1, left: 0 });
        assert!(w.gov.availability_recorded(epoch).await.unwrap());
        assert_eq!(
            w.oracles[0]
                .record_availability_pages(&table, 0, usize::MAX)
                .await
                .unwrap(),
            PagesRecorded::Recorded { sent: 0, left: 0 }
        );

        // Each linked node minted once, at its byte, wherever its page fell.
        let reward = deed.poaRewardFor(200).call().await.unwrap();
        assert_eq!(
            w.r1_balance(w.owner.address()).await,
            before + reward * U256::from(3u64)
        );
        for node in &w.nodes {
            let record = deed.serviceRecord(*node).call().await.unwrap();
            assert_eq!(record.epochsMeasured, 1);
        }
        // A table that is not the agreed one records nothing.
        let other = AvailabilityTable::new(epoch, rows.iter().map(|(n, _)| (*n, 1u8)));
        assert_eq!(
            w.oracles[0]
                .record_availability_pages(&other, 0, usize::MAX)
                .await
                .unwrap(),
            PagesRecorded::OtherTable
        );
    });
}
