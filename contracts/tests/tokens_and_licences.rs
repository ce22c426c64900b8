//! R1, test USDC, the swap pool and Node Deed licences, including PoA minting.
#![allow(clippy::unwrap_used)] // test bodies run inside closures, where the usual test exemption does not reach

mod common;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::sol_types::SolValue;
use common::{World, actor, random_address, raw_revert_of, revert_of, run};
use r1_contracts::bindings::{NodeDeed, PoAIManager, R1, R1UsdcPool, TestUSDC};
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
        let (node, licence) = (w.nodes[0], w.licences[0]);
        assert_eq!(
            deed.licenceOfNode(node).call().await.unwrap(),
            U256::from(licence)
        );
        assert_eq!(
            deed.ownerOfNode(node).call().await.unwrap(),
            w.owner.address()
        );

        let second = w.owner.buy_licence().await.unwrap();
        let err = revert_of::<_, NodeDeed::NodeDeedErrors>(w.owner.link_node(second, node).await);
        assert!(matches!(
            err,
            NodeDeed::NodeDeedErrors::NodeAlreadyLinked(_)
        ));
        let err = revert_of::<_, NodeDeed::NodeDeedErrors>(
            w.owner.link_node(licence, random_address()).await,
        );
        assert!(matches!(
            err,
            NodeDeed::NodeDeedErrors::LicenceAlreadyLinked(_)
        ));
        let err = revert_of::<_, NodeDeed::NodeDeedErrors>(
            w.owner.link_node(second, Address::ZERO).await,
        );
        assert!(matches!(err, NodeDeed::NodeDeedErrors::ZeroNode(_)));

        let stranger = actor(&w).await;
        let err = revert_of::<_, NodeDeed::NodeDeedErrors>(
            stranger.link_node(second, random_address()).await,
        );
        assert!(matches!(err, NodeDeed::NodeDeedErrors::NotLicenceOwner(_)));
        let err = revert_of::<_, NodeDeed::NodeDeedErrors>(
            confirm(stranger.node_deed().unlinkNode(U256::from(licence))).await,
        );
        assert!(matches!(err, NodeDeed::NodeDeedErrors::NotLicenceOwner(_)));

        confirm(deed.unlinkNode(U256::from(licence))).await.unwrap();
        assert_eq!(deed.ownerOfNode(node).call().await.unwrap(), Address::ZERO);
        let err = revert_of::<_, NodeDeed::NodeDeedErrors>(
            confirm(deed.unlinkNode(U256::from(licence))).await,
        );
        assert!(matches!(err, NodeDeed::NodeDeedErrors::LicenceNotLinked(_)));
        w.owner.link_node(second, node).await.unwrap();
        assert_eq!(
            deed.licenceOfNode(node).call().await.unwrap(),
            U256::from(second)
        );
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
                .submitAvailability(U256::from(epoch), vec![w.nodes[0]], vec![])
                .call()
                .await,
        );
        assert!(matches!(
            err,
            PoAIManager::PoAIManagerErrors::LengthMismatch(_)
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
        assert_eq!(w.r1_balance(w.owner.address()).await, before);
        w.oracles[1]
            .submit_availability(epoch, &table)
            .await
            .unwrap();
        assert!(
            deed.availabilityRecorded(U256::from(epoch))
                .call()
                .await
                .unwrap()
        );

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
            PoAIManager::PoAIManagerErrors::AvailabilityAlreadyRecorded(_)
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

        // Put licence 0 half an epoch's reward short of N (poaMinted is storage slot 13), as if
        // it had mined for ~1,080 epochs.
        let licence = U256::from(w.licences[0]);
        let slot = keccak256((licence, U256::from(13u64)).abi_encode());
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
        w.oracles[0].submit_availability(0, &table).await.unwrap();
        assert_eq!(deed.poaMinted(licence).call().await.unwrap(), n);
        assert_eq!(w.r1_balance(w.owner.address()).await, before + (n - almost));
        w.oracles[0].submit_availability(1, &table).await.unwrap();
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
